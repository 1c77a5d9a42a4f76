"""Liveness and readiness, without credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import build_services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from tests.conftest import make_settings
from tests.servers import LOOPBACK, RedisServer, free_port


@asynccontextmanager
async def serving(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    services = build_services(settings, clock=clock)
    await services.start()
    try:
        transport = httpx.ASGITransport(app=create_app(settings, services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await services.close()


def assert_not_ready(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["reason"] == "NOT_READY"
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) >= 1


async def ready_within(http: httpx.AsyncClient, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    response = await http.get("/health/ready")
    while response.status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        response = await http.get("/health/ready")
    return response


async def test_live_needs_no_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_health_does_not_touch_rate_limits(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        ratelimit_auth_failures_per_minute=1,
        ratelimit_auth_failures_burst=1,
    )
    async with serving(settings, clock) as http:
        for _ in range(5):
            live, ready = await http.get("/health/live"), await http.get("/health/ready")
            assert live.status_code == 200
            assert ready.status_code == 200
            assert "RateLimit-Remaining" not in ready.headers


async def test_ready_checks_redis_when_configured(
    tmp_path: Path, database_url: str, clock: FrozenClock, redis_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, redis_url=redis_url)
    async with serving(settings, clock) as http:
        response = await ready_within(http, 3.0)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "ok",
            "checks": {"database": "ok", "redis": "ok", "invalidations": "ok"},
        }


async def test_not_ready_while_redis_is_down(
    tmp_path: Path, clock: FrozenClock, redis_server: RedisServer, redis_url: str
) -> None:
    settings = make_settings(tmp_path, redis_url=redis_url)
    async with serving(settings, clock) as http:
        try:
            redis_server.stop()
            assert_not_ready(await http.get("/health/ready"))
            live = await http.get("/health/live")
            assert live.status_code == 200  # alive, just not ready
        finally:
            if redis_server.process is None:
                redis_server.start()
        response = await ready_within(http, 5.0)  # the listener subscribes again
        assert response.status_code == 200, response.text


async def test_not_ready_while_the_database_is_down(tmp_path: Path, clock: FrozenClock) -> None:
    nowhere = f"postgresql+asyncpg://postgres@{LOOPBACK}:{free_port()}/keyplane"
    settings = make_settings(tmp_path, database_url=nowhere, database_timeout=1.0)
    async with serving(settings, clock) as http:
        response = await http.get("/health/ready")
        assert_not_ready(response)
        assert "postgres" not in response.text
        assert (await http.get("/health/live")).status_code == 200
