"""Facts about the installation itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.store.tables import installation

BOOTSTRAPPED = "bootstrapped"


class InstallationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, key: str) -> str | None:
        result = await self._conn.execute(
            select(installation.c.value).where(installation.c.key == key)
        )
        value = result.scalar_one_or_none()
        return None if value is None else str(value)

    async def claim(self, key: str, value: str, now: datetime) -> None:
        """Insert a fact; raises ``AlreadyExists`` if another process claimed it first."""
        await self._conn.execute(insert(installation).values(key=key, value=value, tm_create=now))
