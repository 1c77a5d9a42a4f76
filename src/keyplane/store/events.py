"""The event outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.records import Delivery
from keyplane.store.tables import events

# Nothing is left to do for these: sent, or there was no webhook to send to.
FINISHED = ("delivered", "skipped")


@dataclass(frozen=True, slots=True)
class LeasedEvent:
    seq: int
    id: uuid.UUID
    customer_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    attempts: int


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(
        self, customer_id: uuid.UUID, event_type: str, payload: dict[str, Any], now: datetime
    ) -> uuid.UUID:
        event_id = uuid.uuid4()
        await self._conn.execute(
            insert(events).values(
                id=event_id,
                customer_id=customer_id,
                type=event_type,
                payload=payload,
                tm_create=now,
            )
        )
        return event_id

    async def list_for_customer(self, customer_id: uuid.UUID) -> list[dict[str, Any]]:
        """Oldest first; for tests and the command line."""
        query = (
            select(events.c.id, events.c.type, events.c.payload, events.c.tm_create)
            .where(events.c.customer_id == customer_id)
            .order_by(events.c.seq)
        )
        return [dict(row) for row in (await self._conn.execute(query)).mappings()]

    async def lease_due(self, now: datetime, until: datetime, *, limit: int) -> list[LeasedEvent]:
        """Take up to ``limit`` due events for delivery until ``until``, oldest first.

        Rows another replica holds are skipped, not waited on (PostgreSQL); a
        lease that ran out (its replica died) is taken again.
        """
        due = (
            select(events.c.seq)
            .where(
                events.c.delivery_status == "pending",
                or_(events.c.tm_next_attempt.is_(None), events.c.tm_next_attempt <= now),
                or_(events.c.tm_lease.is_(None), events.c.tm_lease <= now),
            )
            .order_by(events.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        query = (
            update(events)
            .where(events.c.seq.in_(due.scalar_subquery()))
            .values(tm_lease=until)
            .returning(
                events.c.seq,
                events.c.id,
                events.c.customer_id,
                events.c.type,
                events.c.payload,
                events.c.attempts,
            )
        )
        rows = (await self._conn.execute(query)).all()
        return sorted((LeasedEvent(*row) for row in rows), key=lambda event: event.seq)

    async def record_attempt(
        self,
        seq: int,
        lease: datetime,
        *,
        status: str,
        attempts: int,
        error: str,
        next_attempt: datetime | None,
        delivered: datetime | None,
    ) -> None:
        """The outcome of a delivery, if the lease is still ours."""
        await self._conn.execute(
            update(events)
            .where(events.c.seq == seq, events.c.tm_lease == lease)
            .values(
                delivery_status=status,
                attempts=attempts,
                last_error=error,
                tm_next_attempt=next_attempt,
                tm_delivered=delivered,
                tm_lease=None,
            )
        )

    async def deliveries(
        self, customer_id: uuid.UUID, *, limit: int, before: int | None
    ) -> list[Delivery]:
        query = select(
            events.c.seq,
            events.c.id,
            events.c.type,
            events.c.delivery_status,
            events.c.attempts,
            events.c.last_error,
            events.c.tm_create,
            events.c.tm_next_attempt,
            events.c.tm_delivered,
        ).where(events.c.customer_id == customer_id)
        if before is not None:
            query = query.where(events.c.seq < before)
        query = query.order_by(events.c.seq.desc()).limit(limit)
        return [Delivery(*row) for row in (await self._conn.execute(query)).all()]

    async def prune_finished(self, before: datetime, *, limit: int) -> int:
        """Forget up to ``limit`` finished events created before ``before``, oldest first.

        Pending and failed events are never touched. Each status is one range of
        ``ix_events_status_created``, so a batch costs its own rows.
        """
        seqs: list[int] = []
        for status in FINISHED:
            query = (
                select(events.c.seq)
                .where(events.c.delivery_status == status, events.c.tm_create < before)
                .order_by(events.c.tm_create)
                .limit(limit - len(seqs))
            )
            seqs += (await self._conn.execute(query)).scalars()
            if len(seqs) >= limit:
                break
        if seqs:
            await self._conn.execute(
                delete(events).where(events.c.seq.in_(seqs), events.c.delivery_status.in_(FINISHED))
            )
        return len(seqs)
