"""Admission control for verification cache misses.

A credential the cache cannot vouch for costs a hash, a database read and a
slot of its address's failure budget: many times a cache hit. A flood of
unknown keys from many addresses (each with a full failure budget) would
otherwise take the process's time from the keys it already knows. So misses
go through a gate, per process:

- at most ``concurrency`` misses are evaluated at once, and each one admitted
  first lets the event loop run ``YIELD_TURNS`` turns, so the cache hits read
  meanwhile are served ahead of it (4 busy clients of known keys kept 0.59-0.64
  of their rate under a flood of unknown keys with one turn, 0.79-0.89 with 8);
- at most ``queue`` more wait their turn, in order; waiting costs nothing;
- beyond that a miss is refused at once, 503 ``SERVICE_UNAVAILABLE`` with
  ``Retry-After``, before any hash or database work.

With nothing else to do, misses run back to back: the gate only orders work
(an idle turn costs microseconds against a miss's hundreds).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel

from keyplane.errors import Unavailable

YIELD_TURNS = 8
OVERLOADED_MESSAGE = (
    "Too many unrecognised credentials are being checked at once; "
    "retry after the time in Retry-After."
)


class MissAdmission:
    def __init__(self, concurrency: int, queue: int) -> None:
        self._slots = anyio.Semaphore(concurrency)
        self._queue = queue
        self._waiting = 0
        self.refused = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Run the body as one admitted miss, or raise ``Unavailable`` when the queue is full."""
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            if self._waiting >= self._queue:
                self.refused += 1
                raise Unavailable(OVERLOADED_MESSAGE, reason="SERVICE_UNAVAILABLE") from None
            self._waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self._waiting -= 1
        try:
            # Whatever the loop holds or reads in these turns (hits) runs first.
            for _ in range(YIELD_TURNS):
                await anyio.lowlevel.checkpoint()
            yield
        finally:
            self._slots.release()
