"""``make bench``: the performance suite is not written yet."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    sys.stdout.write(
        "No benchmarks yet: the verification benchmarks arrive with the performance work.\n"
    )
