"""Events describing changes, recorded in the outbox with the change itself,
and the outbox's retention."""

from __future__ import annotations

from datetime import datetime, timedelta

from keyplane.background import BackgroundTask
from keyplane.domain.clock import Clock
from keyplane.domain.records import Accesskey
from keyplane.domain.views import accesskey_view
from keyplane.services.pruning import prune_every_hour
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories

PRUNE_BATCH = 500  # rows per transaction: a few ms of write lock
PRUNE_BATCH_PAUSE = 0.05  # seconds between batches, for the writers of requests

ACCESSKEY_CREATED = "accesskey_created"
ACCESSKEY_UPDATED = "accesskey_updated"
ACCESSKEY_DELETED = "accesskey_deleted"
ACCESSKEY_DISABLED = "accesskey_disabled"
ACCESSKEY_ENABLED = "accesskey_enabled"
ACCESSKEY_ROTATED = "accesskey_rotated"
ACCESSKEY_EXPIRING = "accesskey_expiring"


async def record_accesskey_event(
    repos: Repositories, event_type: str, key: Accesskey, now: datetime
) -> None:
    """Append the event in the caller's transaction; the payload never holds a token."""
    await repos.events.append(key.customer_id, event_type, accesskey_view(key), now)


class OutboxRetention:
    """Forgets finished events older than ``KEYPLANE_EVENT_RETENTION_DAYS``.

    Finished: delivered, or skipped because the customer had no webhook.
    Pending events (still to be delivered or retried) and failed ones (retries
    used up, kept for the customer's delivery status) are never pruned. Every
    replica prunes once an hour, in batches of ``batch`` rows, each its own
    short transaction with a pause between them; replicas pruning at the same
    time only find less to do.
    """

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
        self._task = BackgroundTask("keyplane-outbox-retention", self._run)

    async def prune_batch(self) -> int:
        """One batch, one transaction; returns how many events it forgot."""
        before = self._clock.now() - self._retention
        async with self._db.transaction() as repos:
            return await repos.events.prune_finished(before, limit=self._batch)

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
        await prune_every_hour(self._task, self.prune, "keyplane.events", "outbox_prune_failed")
