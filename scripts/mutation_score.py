"""The score of the last `make mutate` (mutmut), per module, as a Markdown table.

Reads mutmut's results in ./mutants. Killed counts mutants a test failed on,
ran out of time on, or that crashed the test run; survived counts mutants every
test passed on, and mutants no test reached. With --min N, exits 1 when the
overall share killed is below N percent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255, -11, -9, 37}
SURVIVED = {0, 5, 33}


def tally(root: Path) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for meta in sorted(root.glob("src/**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        module = str(meta.relative_to(root / "src")).removesuffix(".meta")
        count: Counter[str] = Counter()
        for code in codes.values():
            if code is None:
                count["not run"] += 1
            elif code in KILLED:
                count["killed"] += 1
            elif code in SURVIVED:
                count["survived"] += 1
            else:
                count["other"] += 1
        counts[module] = count
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min", type=float, default=None, help="fail below this percentage")
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    args = parser.parse_args()
    counts = tally(args.root)
    if not counts:
        print(f"no mutmut results in {args.root}/", file=sys.stderr)
        return 1
    print("| module | mutants | killed | survived | not run | killed % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    total: Counter[str] = Counter()
    for module, count in counts.items():
        total.update(count)
        print(_row(f"`{module}`", count))
    print(_row("**all**", total))
    decided = total["killed"] + total["survived"] + total["other"]
    score = 100 * total["killed"] / decided if decided else 0.0
    print(f"\n{score:.1f}% of the mutants run were killed ({total['not run']} not run)")
    if args.min is not None and score < args.min:
        print(f"at least {args.min}% wanted")
        return 1
    return 0


def _row(name: str, count: Counter[str]) -> str:
    decided = count["killed"] + count["survived"] + count["other"]
    share = f"{100 * count['killed'] / decided:.1f}" if decided else "-"
    mutants = sum(count.values())
    return (
        f"| {name} | {mutants} | {count['killed']} | {count['survived'] + count['other']} "
        f"| {count['not run']} | {share} |"
    )


if __name__ == "__main__":
    sys.exit(main())
