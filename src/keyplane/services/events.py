"""Events describing changes, recorded in the outbox with the change itself,
and the outbox's retention."""

from __future__ import annotations

from datetime import datetime

from keyplane.domain.records import Accesskey
from keyplane.domain.views import accesskey_view
from keyplane.services.pruning import Retention
from keyplane.store.repositories import Repositories

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


class OutboxRetention(Retention):
    """Forgets finished events older than ``KEYPLANE_EVENT_RETENTION_DAYS``.

    Finished: delivered, or skipped because the customer had no webhook.
    Pending events (still to be delivered or retried) and failed ones (retries
    used up, kept for the customer's delivery status) are never pruned.
    """

    task_name = "keyplane-outbox-retention"
    logger = "keyplane.events"
    failed_event = "outbox_prune_failed"

    async def forget(self, repos: Repositories, before: datetime, limit: int) -> int:
        return await repos.events.prune_finished(before, limit=limit)
