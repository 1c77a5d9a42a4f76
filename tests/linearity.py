"""Linear time judged by how time grows with the input, never by a clock's absolute reading.

The super-linear code these checks guard against took seconds to minutes on
64 KiB; linear code takes milliseconds. A reading in seconds fails on a
machine busy with other work, so each check counts the CPU time of this
thread alone (``time.thread_time``: waiting for a core is not counted), for
the same work on input of ``SMALL`` and of ``LARGE`` characters, alternately,
and compares the best of each: linear work grows about 4 times, quadratic work 16 times. What load
still changes (caches, a core's clock) moves single readings, not the best of
several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

KIB = 1024
SMALL = 16 * KIB
LARGE = 64 * KIB  # 4 x SMALL
MAX_GROWTH = 8.0  # half way between linear (4) and quadratic (16)
SLACK = 0.005  # seconds: a timer's resolution and fixed costs, when both readings are tiny
ROUNDS = 5


def best_of(work: Callable[[], object], best: float) -> float:
    started = time.thread_time()
    work()
    return min(best, time.thread_time() - started)


def assert_linear(work_at: Callable[[int], Callable[[], object]]) -> None:
    """``work_at(size)`` gives the work on input of ``size`` characters."""
    small, large = work_at(SMALL), work_at(LARGE)
    best_small = best_large = math.inf
    for _ in range(ROUNDS):
        best_small = best_of(small, best_small)
        best_large = best_of(large, best_large)
    assert best_large <= MAX_GROWTH * best_small + SLACK, (
        f"{best_large * 1000:.1f} ms on {LARGE} characters against {best_small * 1000:.1f} ms"
        f" on {SMALL}: grows more than {MAX_GROWTH:g} times for 4 times the input"
    )
