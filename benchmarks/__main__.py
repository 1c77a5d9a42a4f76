"""``make bench``: measure the figures F1..F10 and S1..S6, and write the results, the plot
and the page."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import load, report, scale
from benchmarks.suite import MODES, Bench, bench_root, run_figures

ROOT = Path(__file__).parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="full")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write latest.json, benchmarks.png and benchmarks.md here (default: the repository)",
    )
    parser.add_argument(
        "--figures",
        choices=("all", "speed", "scale"),
        default="all",
        help="speed: F1..F10 only; scale: S1..S6 only, keeping the other group's figures "
        "from the last results (default: all)",
    )
    args = parser.parse_args(argv)
    mode = MODES[args.mode]
    load.ensure_wrk()
    started = time.monotonic()

    def log(line: str) -> None:
        print(line, flush=True)

    with bench_root() as root:
        bench = Bench(mode, root, log)
        with bench.stack:
            figures = run_figures(bench) if args.figures != "scale" else []
            if args.figures != "speed":
                figures += scale.run_scale_figures(bench)
    result = {
        "schema": report.SCHEMA_VERSION,
        "mode": mode.name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "seconds_total": round(time.monotonic() - started, 1),
        "settings": {
            "seconds_per_run": mode.seconds,
            "rounds": mode.rounds,
            "connections": mode.connections,
        },
        "figures": [figure.as_json() for figure in figures],
    }
    if args.out is None:
        json_path = ROOT / "benchmarks" / "results" / "latest.json"
        plot, page = ROOT / "docs" / "benchmarks.png", ROOT / "docs" / "benchmarks.md"
    else:
        json_path = args.out / "latest.json"
        plot, page = args.out / "benchmarks.png", args.out / "benchmarks.md"
    if args.figures != "all" and json_path.exists():
        result = report.keep_unmeasured(result, json.loads(json_path.read_text()))
    report.write_json(json_path, result)
    report.write_plot(plot, result)
    report.write_markdown(page, result, plot.name)
    log(f"wrote {json_path}, {plot} and {page} in {result['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
