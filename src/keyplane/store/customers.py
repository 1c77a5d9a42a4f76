"""Customers."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.records import Customer
from keyplane.store.tables import customers


def _to_record(row: RowMapping) -> Customer:
    return Customer(**dict(row))


class CustomerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(self, customer: Customer) -> None:
        await self._conn.execute(
            insert(customers).values(
                id=customer.id,
                name=customer.name,
                detail=customer.detail,
                email=customer.email,
                webhook_method=customer.webhook_method,
                webhook_uri=customer.webhook_uri,
                phone_number=customer.phone_number,
                address=customer.address,
                tm_create=customer.tm_create,
                tm_update=customer.tm_update,
                tm_delete=customer.tm_delete,
            )
        )

    async def get(self, customer_id: uuid.UUID) -> Customer | None:
        result = await self._conn.execute(select(customers).where(customers.c.id == customer_id))
        row = result.mappings().first()
        return _to_record(row) if row is not None else None

    async def list_live(
        self, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Customer]:
        """Live customers, oldest first, after the ``(tm_create, id)`` of the last one seen."""
        query = select(customers).where(customers.c.tm_delete.is_(None))
        if after is not None:
            query = query.where(tuple_(customers.c.tm_create, customers.c.id) > tuple_(*after))
        query = query.order_by(customers.c.tm_create, customers.c.id).limit(limit)
        rows = (await self._conn.execute(query)).mappings().all()
        return [_to_record(row) for row in rows]

    async def count(self) -> int:
        result = await self._conn.execute(select(func.count()).select_from(customers))
        return int(result.scalar_one())

    async def soft_delete(self, customer_id: uuid.UUID, *, now: datetime) -> Customer | None:
        query = (
            update(customers)
            .where(customers.c.id == customer_id, customers.c.tm_delete.is_(None))
            .values(tm_delete=now, tm_update=now)
            .returning(*customers.columns)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None

    async def update_profile(
        self, customer_id: uuid.UUID, *, now: datetime, **fields: str
    ) -> Customer | None:
        """Change the fields VoIPBIN's PUT /v1.0/customer changes; ``None`` if gone."""
        query = (
            update(customers)
            .where(customers.c.id == customer_id, customers.c.tm_delete.is_(None))
            .values(tm_update=now, **fields)
            .returning(*customers.columns)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None

    async def next_webhook_secret_generation(
        self, customer_id: uuid.UUID, *, now: datetime
    ) -> int | None:
        query = (
            update(customers)
            .where(customers.c.id == customer_id, customers.c.tm_delete.is_(None))
            .values(
                webhook_secret_generation=customers.c.webhook_secret_generation + 1, tm_update=now
            )
            .returning(customers.c.webhook_secret_generation)
        )
        value = (await self._conn.execute(query)).scalar_one_or_none()
        return None if value is None else int(value)
