"""Reads on a SQLite file run on the event loop's thread; elsewhere, through the async engine."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import literal, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.services.container import Services
from keyplane.store.engine import INLINE_CACHE_KIB, _InlineConnection
from tests.factories import Factory


async def test_readers_read_what_was_committed(services: Services, factory: Factory) -> None:
    customer = await factory.customer()
    key, _token = await factory.accesskey(customer)
    async with services.database.reader() as repos:
        found = await repos.accesskeys.get(key.id)
        inline = isinstance(repos.connection, _InlineConnection)
    assert found is not None
    assert found.id == key.id
    assert found.tm_create == key.tm_create
    assert found.tm_create.tzinfo is not None
    # Inline on SQLite only: PostgreSQL reads stay on the async driver.
    assert inline == (services.database.engine.dialect.name == "sqlite")
    if not inline:
        async with services.database.reader() as repos:
            assert isinstance(repos.connection, AsyncConnection)


class _Locked:
    """A synchronous connection whose database is locked."""

    def __init__(self) -> None:
        self.rolled_back = False

    def execute(self, *_args: Any) -> Any:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

    def rollback(self) -> None:
        self.rolled_back = True


async def test_a_locked_inline_read_runs_again_on_the_async_engine(services: Services) -> None:
    locked = _Locked()
    connection = _InlineConnection(locked, services.database.engine)  # type: ignore[arg-type]
    result = await connection.execute(select(literal(41) + 1))
    assert result.scalar_one() == 42
    assert locked.rolled_back


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_inline_reads_are_read_only_and_keep_a_larger_page_cache(
    services: Services,
) -> None:
    async with services.database.reader() as repos:
        connection = repos.connection
        assert isinstance(connection, _InlineConnection)
        settings = [
            (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
            for name in ("query_only", "cache_size")
        ]
    assert settings == [1, -INLINE_CACHE_KIB]  # negative: KiB, not pages
    assert INLINE_CACHE_KIB >= 16 * 1024
