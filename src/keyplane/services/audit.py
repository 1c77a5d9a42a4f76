"""Recording and reading the audit log, and keeping it to its retention."""

from __future__ import annotations

import uuid
from datetime import datetime

from keyplane.domain.audit import AUDIT_TYPES, AuditEntry, current_origin
from keyplane.domain.permissions import Identity, require_secret_keeper
from keyplane.services.pruning import Retention
from keyplane.store.engine import Database
from keyplane.store.repositories import Repositories


async def record_audit(
    repos: Repositories,
    actor: Identity,
    event_type: str,
    *,
    customer_id: uuid.UUID,
    subject_id: uuid.UUID,
    now: datetime,
) -> None:
    """Append in the caller's transaction: the log holds exactly what was committed."""
    if event_type not in AUDIT_TYPES:  # a type the query could not find, nor the docs name
        raise ValueError(f"{event_type!r} is not one of keyplane.domain.audit.AUDIT_TYPES.")
    origin = current_origin()
    await repos.audit.append(
        customer_id=customer_id,
        type=event_type,
        actor_type=actor.type,
        actor_id=actor.id,
        subject_id=subject_id,
        address=origin.address,
        request_id=origin.request_id,
        now=now,
    )


class AuditRetention(Retention):
    """Forgets audit entries older than ``KEYPLANE_AUDIT_RETENTION_DAYS``."""

    task_name = "keyplane-audit-retention"
    logger = "keyplane.audit"
    failed_event = "audit_prune_failed"

    async def forget(self, repos: Repositories, before: datetime, limit: int) -> int:
        return await repos.audit.prune(before, limit=limit)


class AuditService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def page(
        self,
        identity: Identity,
        customer_id: uuid.UUID,
        *,
        types: frozenset[str],
        since: datetime | None,
        until: datetime | None,
        before: int | None,
        limit: int,
    ) -> list[AuditEntry]:
        # Who did what from where: the customer admin's to read, never a restricted key's.
        require_secret_keeper(identity, customer_id, "Reading the audit log")
        async with self._db.reader() as repos:
            return await repos.audit.page(
                customer_id, types=types, since=since, until=until, before=before, limit=limit
            )
