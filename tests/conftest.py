"""Shared fixtures: a fresh database, the real services and the ASGI app per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services, build_services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from tests.factories import Factory

START = datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC)
TEST_JWT_SECRET = "test-secret-" + "x" * 40


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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock)
    await built.migrate()
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
