"""The audit log table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.audit import AuditEntry
from keyplane.store.tables import audit_log

_COLUMNS = (
    audit_log.c.seq,
    audit_log.c.id,
    audit_log.c.customer_id,
    audit_log.c.type,
    audit_log.c.actor_type,
    audit_log.c.actor_id,
    audit_log.c.subject_id,
    audit_log.c.address,
    audit_log.c.request_id,
    audit_log.c.tm_create,
)


class AuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(
        self,
        *,
        customer_id: uuid.UUID,
        type: str,
        actor_type: str,
        actor_id: uuid.UUID,
        subject_id: uuid.UUID,
        address: str,
        request_id: str,
        now: datetime,
    ) -> None:
        await self._conn.execute(
            insert(audit_log).values(
                id=uuid.uuid4(),
                customer_id=customer_id,
                type=type,
                actor_type=actor_type,
                actor_id=actor_id,
                subject_id=subject_id,
                address=address[:64],
                request_id=request_id[:128],
                tm_create=now,
            )
        )

    async def page(
        self,
        customer_id: uuid.UUID,
        *,
        types: frozenset[str],
        since: datetime | None,
        until: datetime | None,
        before: int | None,
        limit: int,
    ) -> list[AuditEntry]:
        """Newest first; ``before`` is the last sequence number already seen."""
        query = select(*_COLUMNS).where(audit_log.c.customer_id == customer_id)
        if types:
            query = query.where(audit_log.c.type.in_(sorted(types)))
        if since is not None:
            query = query.where(audit_log.c.tm_create >= since)
        if until is not None:
            query = query.where(audit_log.c.tm_create < until)
        if before is not None:
            query = query.where(audit_log.c.seq < before)
        query = query.order_by(audit_log.c.seq.desc()).limit(limit)
        rows = (await self._conn.execute(query)).mappings()
        return [AuditEntry(**row) for row in rows]

    async def prune(self, before: datetime, *, limit: int) -> int:
        """Forget up to ``limit`` entries created before ``before``, oldest first: one range
        of the ``tm_create`` index, so a batch costs its own rows."""
        query = (
            select(audit_log.c.seq)
            .where(audit_log.c.tm_create < before)
            .order_by(audit_log.c.tm_create)
            .limit(limit)
        )
        seqs = list((await self._conn.execute(query)).scalars())
        if seqs:
            await self._conn.execute(delete(audit_log).where(audit_log.c.seq.in_(seqs)))
        return len(seqs)
