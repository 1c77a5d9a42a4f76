"""Retentions: forgetting old rows once an hour, in short batches (audit log, events outbox)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from keyplane.background import BackgroundTask
from keyplane.domain.clock import Clock
from keyplane.errors import KeyplaneError
from keyplane.logs import get_logger
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 500  # rows per transaction: a few ms of write lock
PRUNE_BATCH_PAUSE = 0.05  # seconds between batches, for the writers of requests

# Forgets up to ``limit`` rows created before ``before``, oldest first; returns how many.
Forget = Callable[[Repositories, datetime, int], Awaitable[int]]


class Retention:
    """Forgets what ``forget`` selects once it is older than ``retention_days``.

    Every replica prunes at once on start, then hourly, in batches of ``batch``
    rows, each its own short transaction with a pause between them, so no
    batch holds a write lock for long; replicas pruning at the same time only
    find less to do. A failed round is logged and tried again a minute later.
    """

    def __init__(
        self,
        database: Database,
        clock: Clock,
        forget: Forget,
        *,
        retention_days: int,
        name: str,
        logger: str,
        failed_event: str,
        batch: int = PRUNE_BATCH,
        pause: float = PRUNE_BATCH_PAUSE,
    ) -> None:
        self._db = database
        self._clock = clock
        self._forget = forget
        self._retention = timedelta(days=retention_days)
        self._logger = logger
        self._failed_event = failed_event
        self._batch = batch
        self._pause = pause
        self._task = BackgroundTask(name, self._run)

    async def prune_batch(self) -> int:
        """One batch, one transaction; returns how many rows it forgot."""
        before = self._clock.now() - self._retention
        async with self._db.transaction() as repos:
            return await self._forget(repos, before, self._batch)

    async def prune(self) -> int:
        """Batches until one comes back short (or the task is asked to stop)."""
        total = 0
        while True:
            pruned = await self.prune_batch()
            total += pruned
            if pruned < self._batch or not await self._task.pause(self._pause):
                return total

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        log = get_logger(self._logger)
        last: float | None = None
        while True:
            if last is None or time.monotonic() - last >= PRUNE_EVERY_SECONDS:
                try:
                    await self.prune()
                    last = time.monotonic()
                except KeyplaneError as error:
                    log.warning(self._failed_event, reason=error.reason)
            if not await self._task.pause(60.0):
                return
