"""Where the test process's main thread sat still: for the report of a failed test.

A database deadline that runs out in a test (a 503 where none was expected)
means the event loop waited: on a server that did not answer, on a wake-up
that never came, or in a call that blocked the whole thread. A daemon thread
samples the main thread's innermost frame five times a second and notes every
stretch of ``MIN_SECONDS`` or more in which it stayed at the same line of the
same frame, with the stack. ``tests/conftest.py`` adds those that overlap a
failed test to its report.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import FrameType

MIN_SECONDS = 2.0
SAMPLE_SECONDS = 0.2


@dataclass
class Stall:
    started: float  # time.monotonic()
    seconds: float
    stack: str


class StallWatch:
    def __init__(self) -> None:
        self._main = threading.main_thread().ident
        self._stalls: list[Stall] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="tests-stall-watch", daemon=True).start()

    def since(self, moment: float) -> list[Stall]:
        with self._lock:
            return [stall for stall in self._stalls if stall.started + stall.seconds >= moment]

    def _innermost(self) -> FrameType | None:
        return sys._current_frames().get(self._main or 0)

    def _watch(self) -> None:
        where: tuple[int, int] | None = None
        since = time.monotonic()
        noted: Stall | None = None
        while True:
            time.sleep(SAMPLE_SECONDS)
            frame = self._innermost()
            now = time.monotonic()
            here = None if frame is None else (id(frame), frame.f_lineno)
            if here != where:
                where, since, noted = here, now, None
                continue
            if frame is None or now - since < MIN_SECONDS:
                continue
            if noted is None:
                noted = Stall(since, now - since, "".join(traceback.format_stack(frame)[-12:]))
                with self._lock:
                    self._stalls.append(noted)
                    del self._stalls[:-50]
            else:
                noted.seconds = now - since
