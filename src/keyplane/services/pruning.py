"""Retentions: forgetting old rows once an hour, in short batches (audit log, events outbox,
sessions ended by a logout)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import ClassVar

from keyplane.background import BackgroundTask
from keyplane.domain.clock import Clock
from keyplane.errors import KeyplaneError
from keyplane.logs import get_logger
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

PRUNE_EVERY_SECONDS = 3600.0
PRUNE_BATCH = 500  # rows per transaction: a few ms of write lock
PRUNE_BATCH_PAUSE = 0.05  # seconds between batches, for the writers of requests


class Retention(ABC):
    """Forgets what ``forget`` selects once it is older than ``retention_days``.

    A subclass names its task, logger and failure event, and says what to forget.

    Every replica prunes at once on start, then hourly, in batches of ``batch``
    rows, each its own short transaction with a pause between them, so no
    batch holds a write lock for long; replicas pruning at the same time only
    find less to do. A failed round is logged and tried again a minute later.
    """

    task_name: ClassVar[str]
    logger: ClassVar[str]
    failed_event: ClassVar[str]

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        retention_days: int,
        batch: int = PRUNE_BATCH,
        pause: float = PRUNE_BATCH_PAUSE,
    ) -> None:
        self._db = database
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self._batch = batch
        self._pause = pause
        self._task = BackgroundTask(self.task_name, self._run)

    @abstractmethod
    async def forget(self, repos: Repositories, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` rows dated before ``before``, oldest first; how many.

        A row's date is when it was made, or whatever ends its use (an ended
        session's token expiry).
        """

    async def prune_batch(self) -> int:
        """One batch, one transaction; returns how many rows it forgot."""
        before = self._clock.now() - self._retention
        async with self._db.transaction() as repos:
            return await self.forget(repos, before, self._batch)

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
        log = get_logger(self.logger)
        last: float | None = None
        while True:
            if last is None or time.monotonic() - last >= PRUNE_EVERY_SECONDS:
                try:
                    await self.prune()
                    last = time.monotonic()
                except KeyplaneError as error:
                    log.warning(self.failed_event, reason=error.reason)
            if not await self._task.pause(60.0):
                return
