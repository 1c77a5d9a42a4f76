"""A logout on one replica ends the session on another, in process, on SQLite and PostgreSQL.

Two replicas share the database (and Redis in the second test), each with its
own verification cache. The other replica has the session cached as live when
the logout happens on the first; it refuses the token through the revocation
log when no message reaches it, and within the revocation bound when Redis and
the log both run, as for a deleted key.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from keyplane.cache.verification import MISS
from keyplane.domain.clock import FrozenClock
from tests.conftest import DATABASES, replica
from tests.factories import Factory
from tests.integration.admin.conftest import logged_in, on_both_databases, session_id_of
from tests.integration.test_verification_cache import eventually

BOUND = 1.0  # seconds: the revocation bound of docs/security.md


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_logout_reaches_a_replica_that_missed_the_message(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """No Redis: only the revocation log tells the other replica."""
    async with (
        replica(tmp_path, database_url, clock) as one,
        replica(tmp_path, database_url, clock, fresh=False) as other,
        one.client() as on_one,
        other.client() as on_other,
    ):
        page = await logged_in(on_one, Factory(one.services))
        session_id = session_id_of(page.token)
        assert await other.services.revocations.poll() == 0  # follows the log from here
        assert (await on_other.get("/v1.0/customer", headers=bearer(page.token))).is_success
        assert other.services.cache.get_session(session_id) is None  # cached as live

        logout = await on_one.post("/admin/logout", data={"csrf": page.csrf})
        assert logout.status_code == 303
        assert (await on_one.get("/v1.0/customer", headers=bearer(page.token))).status_code == 401

        assert await other.services.revocations.poll() == 1  # the session's entry
        assert other.services.cache.get_session(session_id) is MISS
        refused = await on_other.get("/v1.0/customer", headers=bearer(page.token))
        assert refused.status_code == 401
        assert refused.json()["error"]["reason"] == "INVALID_CREDENTIALS"
        page_refused = await on_other.get(
            "/admin/keys", headers={"Cookie": f"keyplane_admin={page.token}"}
        )
        assert page_refused.headers["location"] == "/admin/login"


async def refused_after(http: httpx.AsyncClient, token: str, since: float) -> float:
    """Poll until ``token`` is refused; seconds since ``since``."""
    while time.monotonic() - since < 5.0:
        response = await http.get("/v1.0/customer", headers=bearer(token))
        if response.status_code == 401:
            return time.monotonic() - since
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.005)
    raise AssertionError("the session was still accepted 5 s after the logout")


async def test_a_logout_is_refused_on_a_running_replica_within_the_bound(
    tmp_path: Path, database_url: str, clock: FrozenClock, redis_url: str
) -> None:
    """Both replicas running, with Redis: the other one refuses the session within a second."""
    async with (
        replica(tmp_path, database_url, clock, start=True, redis_url=redis_url) as one,
        replica(
            tmp_path, database_url, clock, fresh=False, start=True, redis_url=redis_url
        ) as other,
        one.client() as on_one,
        other.client() as on_other,
    ):
        assert await eventually(lambda: other.services.cache.connected, within=5.0)
        factory = Factory(one.services)
        delays = []
        for _ in range(3):
            page = await logged_in(on_one, factory)
            for _ in range(3):  # the other replica now has the session cached as live
                ok = await on_other.get("/v1.0/customer", headers=bearer(page.token))
                assert ok.status_code == 200
            assert other.services.cache.get_session(session_id_of(page.token)) is None
            started = time.monotonic()
            logout = await on_one.post("/admin/logout", data={"csrf": page.csrf})
            assert logout.status_code == 303
            delays.append(await refused_after(on_other, page.token, started))
        assert max(delays) < BOUND, delays
