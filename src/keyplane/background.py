"""A named background task of a serving process, started and stopped once.

A task that writes or reads the database must not be cancelled in the middle
of a statement: the database driver's worker thread would go on and report its
result to an event loop that may be gone by then. Such a task waits between
rounds with ``pause()``, and ``stop()`` lets the round in progress finish.
A task made with ``interruptible=True`` (a Redis listener) is cancelled at once,
and again until it ends: on Python 3.11, ``asyncio.wait_for`` swallows a
cancellation that arrives as the awaited operation completes (redis-py sends
every command under it), and the listener would carry on as if never asked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

# How long a cancelled task may take to end before it is cancelled again.
RECANCEL_SECONDS = 0.1


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
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return not self._stopping.is_set()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        while self._interruptible and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=RECANCEL_SECONDS)
        await asyncio.wait({self._task})  # a cancellation of the caller goes on up
        task, self._task = self._task, None
        if not task.cancelled():
            task.result()  # what the task died of, if anything
