"""Agents: people who log in with a username and password."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.records import Agent
from keyplane.errors import AlreadyExists, FailedPrecondition
from keyplane.store.tables import agents, customers


def _to_record(row: RowMapping) -> Agent:
    return Agent(**{column.name: row[column.name] for column in agents.columns})


class AgentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(self, agent: Agent) -> None:
        try:
            await self._conn.execute(
                insert(agents).values(
                    id=agent.id,
                    customer_id=agent.customer_id,
                    username=agent.username,
                    password_hash=agent.password_hash,
                    name=agent.name,
                    detail=agent.detail,
                    permission=agent.permission,
                    tm_create=agent.tm_create,
                    tm_update=agent.tm_update,
                    tm_delete=agent.tm_delete,
                )
            )
        except IntegrityError as error:
            if "username" in str(error.orig).lower():
                raise AlreadyExists(
                    # The name is not repeated: error text reaches logs and terminals.
                    "This username is taken; a deleted agent keeps its username, "
                    "so choose another.",
                    reason="USERNAME_TAKEN",
                ) from None
            raise FailedPrecondition(
                "The customer does not exist.", reason="CUSTOMER_NOT_FOUND"
            ) from None

    async def get_active_by_username(self, username: str) -> Agent | None:
        return await self._active(agents.c.username == username)

    async def get_active(self, agent_id: uuid.UUID) -> Agent | None:
        return await self._active(agents.c.id == agent_id)

    async def list_live(self, customer_id: uuid.UUID) -> list[Agent]:
        """A customer's live agents, by username (a customer has a handful, not thousands)."""
        query = (
            select(agents)
            .where(agents.c.customer_id == customer_id, agents.c.tm_delete.is_(None))
            .order_by(agents.c.username)
        )
        rows = (await self._conn.execute(query)).mappings().all()
        return [_to_record(row) for row in rows]

    async def _active(self, condition: ColumnElement[bool]) -> Agent | None:
        """The live agent of a live customer that matches, or ``None``."""
        query = (
            select(agents)
            .join(customers, customers.c.id == agents.c.customer_id)
            .where(condition, agents.c.tm_delete.is_(None), customers.c.tm_delete.is_(None))
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None

    async def set_password_hash(
        self, agent_id: uuid.UUID, password_hash: str, *, now: datetime | None = None
    ) -> None:
        """A new hash; ``now`` marks a change of password (a rehash leaves ``tm_update``)."""
        values: dict[str, object] = {"password_hash": password_hash}
        if now is not None:
            values["tm_update"] = now
        await self._conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))

    async def soft_delete(self, agent_id: uuid.UUID, *, now: datetime) -> Agent | None:
        query = (
            update(agents)
            .where(agents.c.id == agent_id, agents.c.tm_delete.is_(None))
            .values(tm_delete=now, tm_update=now)
            .returning(*agents.columns)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return _to_record(row) if row is not None else None
