"""Shared fixtures: the real services and the ASGI app on a fresh database per test.

Every test that uses ``settings`` (and so ``services``, ``client``, ``factory``)
runs twice: on SQLite and on PostgreSQL. PostgreSQL is started once per run
(throwaway cluster, free loopback port); each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services, build_services
from keyplane.settings import Settings
from keyplane.store import migrate
from keyplane.store.engine import create_engine
from keyplane.store.tables import metadata
from keyplane.web.app import create_app
from tests.factories import Factory
from tests.servers import PostgresServer, RedisServer

START = datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC)
TEST_JWT_SECRET = "test-secret-" + "x" * 40
DATABASES = ["sqlite", "postgresql"]


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for tests: nothing from the environment or a .env file."""
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'keyplane.db'}",
        "data_dir": data_dir,
        "jwt_secret": TEST_JWT_SECRET,
        # The OWASP floor: fast enough for tests, still argon2id.
        "argon2_memory_kib": 19 * 1024,
        "argon2_time_cost": 2,
        "argon2_parallelism": 1,
        "bootstrap": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        url = server.create_database("keyplane")
        engine = create_engine(url)
        asyncio.run(_migrate_and_dispose(engine))
        yield server
    finally:
        server.destroy()


async def _migrate_and_dispose(engine: object) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


async def _empty_tables(services: Services) -> None:
    if services.database.engine.dialect.name != "postgresql":
        return  # a new SQLite file per test
    names = ", ".join(table.name for table in metadata.sorted_tables)
    async with services.database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock)
    await built.migrate()
    await _empty_tables(built)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def factory(services: Services) -> Factory:
    return Factory(services)


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
