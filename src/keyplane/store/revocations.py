"""The revocation log: what every replica's cache must forget; and the sessions ended by a
logout, which stay refused until their token expires."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.store.tables import revocations, revoked_sessions


@dataclass(frozen=True, slots=True)
class Revocation:
    seq: int
    kind: str
    subject_id: uuid.UUID
    token_hash: str | None
    tm_create: datetime


class RevocationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(
        self, kind: str, subject_id: uuid.UUID, token_hash: str | None, now: datetime
    ) -> None:
        await self._conn.execute(
            insert(revocations).values(
                kind=kind, subject_id=subject_id, token_hash=token_hash, tm_create=now
            )
        )

    async def last_seq(self) -> int:
        result = await self._conn.execute(select(func.max(revocations.c.seq)))
        return int(result.scalar_one_or_none() or 0)

    async def after(self, seq: int, *, limit: int = 1000) -> list[Revocation]:
        """Revocations with a sequence number above ``seq``, oldest first."""
        query = (
            select(
                revocations.c.seq,
                revocations.c.kind,
                revocations.c.subject_id,
                revocations.c.token_hash,
                revocations.c.tm_create,
            )
            .where(revocations.c.seq > seq)
            .order_by(revocations.c.seq)
            .limit(limit)
        )
        return [Revocation(*row) for row in (await self._conn.execute(query)).all()]

    async def prune(self, before: datetime) -> None:
        await self._conn.execute(delete(revocations).where(revocations.c.tm_create < before))

    # Sessions ended by a logout ----------------------------------------------

    async def revoke_session(
        self,
        session_id: uuid.UUID,
        *,
        agent_id: uuid.UUID,
        customer_id: uuid.UUID,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """Raises ``AlreadyExists`` (mapped by the transaction) if it was ended already."""
        await self._conn.execute(
            insert(revoked_sessions).values(
                id=session_id,
                agent_id=agent_id,
                customer_id=customer_id,
                tm_expire=expires_at,
                tm_create=now,
            )
        )

    async def session_revoked(self, session_id: uuid.UUID) -> bool:
        """One primary key seek, on the request path of a session not yet cached."""
        query = select(revoked_sessions.c.id).where(revoked_sessions.c.id == session_id)
        return (await self._conn.execute(query)).first() is not None

    async def prune_sessions(self, before: datetime, *, limit: int) -> int:
        """Forget up to ``limit`` sessions whose token expired before ``before``, oldest
        first: one range of the ``tm_expire`` index, so a batch costs its own rows."""
        query = (
            select(revoked_sessions.c.id)
            .where(revoked_sessions.c.tm_expire < before)
            .order_by(revoked_sessions.c.tm_expire)
            .limit(limit)
        )
        ids = list((await self._conn.execute(query)).scalars())
        if ids:
            await self._conn.execute(delete(revoked_sessions).where(revoked_sessions.c.id.in_(ids)))
        return len(ids)
