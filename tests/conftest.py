"""Shared fixtures: the real services and the ASGI app on a fresh database per test.

Every test that uses ``settings`` (and so ``services``, ``client``, ``factory``)
runs twice: on SQLite and on PostgreSQL. PostgreSQL is started once per run
(throwaway cluster, free loopback port); each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.dependencies import models as fastapi_models
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


# FastAPI remembers, for each callable it has classified, whether it is a
# coroutine or a generator function (three caches of up to 4,096 entries in
# fastapi.dependencies.models). The endpoints create_app defines are new
# callables for every app, and each keeps its app alive: over a whole run,
# thousands of apps, a gigabyte or more per test process, and full garbage
# collections that pause it for seconds. Each test's apps are forgotten after it.
_FASTAPI_CALLABLE_CACHES = (
    fastapi_models._is_gen_callable_cached,
    fastapi_models._is_async_gen_callable_cached,
    fastapi_models._is_coroutine_callable_cached,
)


@pytest.fixture(autouse=True)
def _forget_this_tests_apps() -> Iterator[None]:
    yield
    for cache in _FASTAPI_CALLABLE_CACHES:
        cache.cache_clear()


# The shared PostgreSQL of this process, once started: a failed test's report
# carries what it logged meanwhile (lock waits, slow statements, errors).
_shared_postgres: list[PostgresServer] = []
_POSTGRES_LOG_OFFSET = pytest.StashKey[int]()


# The order xdist hands out files in (`make test` runs with --dist loadfile
# --no-loadscope-reorder): the files whose tests start servers first, the
# in-process ones last, each group in pytest-randomly's shuffled order. A
# worker then ends the run on small files, not on one that takes a minute
# while the other worker has nothing left to do.
_DIRECTORY_ORDER = ("functional", "integration", "unit")


def _directory_rank(item: pytest.Item) -> int:
    tests = Path(__file__).parent
    group = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
    return _DIRECTORY_ORDER.index(group) if group in _DIRECTORY_ORDER else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_directory_rank)  # stable: the shuffled order within each group stays


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[_POSTGRES_LOG_OFFSET] = _shared_postgres[0].log_size() if _shared_postgres else 0
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    if _shared_postgres:
        logged = _shared_postgres[0].log_since(item.stash.get(_POSTGRES_LOG_OFFSET, 0))
        if logged:
            report.sections.append(("postgresql log during this test", logged))
    return report


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    _shared_postgres.append(server)
    try:
        server.init()
        server.start()
        url = server.create_database("keyplane")
        engine = create_engine(url)
        asyncio.run(_migrate_and_dispose(engine))
        yield server
    finally:
        _shared_postgres.remove(server)
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


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    """The shared Redis, emptied (and started again if a test left it stopped)."""
    if redis_server.process is None:
        redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return redis_server.url


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


async def empty_tables(services: Services) -> None:
    if services.database.engine.dialect.name != "postgresql":
        return  # a new SQLite file per test
    names = ", ".join(table.name for table in metadata.sorted_tables)
    async with services.database.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock)
    await built.migrate()
    await empty_tables(built)
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


@dataclass
class Replica:
    """One keyplane replica in this process: its services and its app."""

    services: Services
    app: FastAPI

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40_000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@asynccontextmanager
async def replica(
    tmp_path: Path,
    database_url: str,
    clock: FrozenClock,
    *,
    fresh: bool = True,
    start: bool = False,
    **overrides: object,
) -> AsyncIterator[Replica]:
    """A replica with its own settings; ``start`` runs its background work too."""
    settings = make_settings(tmp_path, database_url=database_url, **overrides)
    services = build_services(settings, clock=clock)
    try:
        await services.migrate()
        if fresh:
            await empty_tables(services)
        if start:
            await services.start()
        yield Replica(services, create_app(settings, services=services))
    finally:
        await services.close()


@asynccontextmanager
async def started_replica(
    tmp_path: Path, database_url: str, clock: FrozenClock, *, fresh: bool, **overrides: object
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """A started replica and a client for it."""
    async with (
        replica(tmp_path, database_url, clock, fresh=fresh, start=True, **overrides) as running,
        running.client() as http,
    ):
        yield running.services, http
