"""PostgreSQL's pool pings a connection before use only when it sat idle.

A connection in steady use is not pinged (a round trip per request saved); one
idle past ``PING_AFTER_IDLE_SECONDS`` that the server has cut is replaced
before use, so a request never meets it. A connection cut while in steady
use fails one request (503, no verdict) and the pool recovers at once.
"""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from keyplane.errors import Unavailable
from keyplane.store import engine as engine_module
from keyplane.store.engine import Database, create_engine
from tests.servers import PostgresServer


@pytest.fixture
def database(one_connection_database: Database) -> Database:
    return one_connection_database


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
    assert isinstance(pid, int)
    return pid


async def cut(postgres: PostgresServer, pid: int) -> None:
    other = create_engine(postgres.url(), pool_size=1)
    try:
        async with other.connect() as conn:
            await conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    finally:
        await other.dispose()


def count_pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = database.engine.sync_engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def test_a_connection_in_steady_use_is_not_pinged(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    pings = count_pings(database, monkeypatch)
    first = await backend_pid(database.engine)
    for _ in range(5):
        await database.ping()
    assert await backend_pid(database.engine) == first  # the same pooled connection
    assert pings == []


async def test_an_idle_connection_cut_by_the_server_is_replaced_before_use(
    database: Database, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = count_pings(database, monkeypatch)
    first = await backend_pid(database.engine)
    await cut(postgres, first)
    # Every pooled connection counts as idle from now on.
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    await database.ping()  # no error: the ping found it dead and the pool replaced it
    assert pings
    assert await backend_pid(database.engine) != first


async def test_a_connection_cut_in_steady_use_fails_one_request_then_recovers(
    database: Database, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = await backend_pid(database.engine)
    await cut(postgres, first)
    with pytest.raises(Unavailable):
        await database.ping()
    await database.ping()
    assert await backend_pid(database.engine) != first
