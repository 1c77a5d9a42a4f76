"""The event outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.store.tables import events


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
