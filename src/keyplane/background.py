"""A named background task of a serving process, started and stopped once.

A task that writes or reads the database must not be cancelled in the middle
of a statement: the database driver's worker thread would go on and report its
result to an event loop that may be gone by then. Such a task waits between
rounds with ``pause()``, and ``stop()`` lets the round in progress finish.
A task made with ``interruptible=True`` (a Redis listener) is cancelled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundTask:
    def __init__(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        *,
        interruptible: bool = False,
    ) -> None:
        self._name = name
        self._run = run
        self._interruptible = interruptible
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()  # of the loop that runs the task
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def pause(self, seconds: float) -> bool:
        """Wait between rounds; False once the task is asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        if self._interruptible:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
