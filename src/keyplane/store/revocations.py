"""The revocation log: what every replica's cache must forget."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.store.tables import revocations


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
