"""``kill -9`` of the server during a burst of key creations loses no key a client received.

A key whose token reached the client was committed before the answer was
sent, so after a restart every such token still authenticates. On SQLite and
on PostgreSQL, with a real ``keyplane serve`` on loopback.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.functional.conftest import ServerLauncher, Workspace, parse_first_start
from tests.servers import PostgresServer

pytestmark = pytest.mark.e2e

CREATORS = 8
KILL_AFTER = 60  # keys received before the kill
LIMITS = {
    "KEYPLANE_BOOTSTRAP": "true",
    "KEYPLANE_LOG_FORMAT": "json",
    "KEYPLANE_RATELIMIT_AUTH_FAILURES_BURST": "100000",
}


async def _burst_until_killed(base_url: str, admin: str, kill: Callable[[], None]) -> list[str]:
    received: list[str] = []
    enough = asyncio.Event()

    async def creator(http: httpx.AsyncClient) -> None:
        while True:
            try:
                response = await http.post(
                    f"{base_url}/v1.0/accesskeys",
                    json={"name": "burst", "detail": "", "expire": 86_400},
                    headers={"Authorization": f"Bearer {admin}"},
                )
            except httpx.TransportError:
                return  # the server is gone
            assert response.status_code == 200, response.text
            received.append(response.json()["token"])
            if len(received) >= KILL_AFTER:
                enough.set()

    async with httpx.AsyncClient(timeout=10) as http:
        tasks = [asyncio.create_task(creator(http)) for _ in range(CREATORS)]
        try:
            await asyncio.wait_for(enough.wait(), timeout=60)
            kill()  # SIGKILL while requests are in flight
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        finally:
            for task in tasks:
                task.cancel()
    return received


def _all_authenticate(base_url: str, tokens: list[str]) -> list[int]:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        return [
            http.get("/v1.0/customer", headers={"Authorization": f"Bearer {token}"}).status_code
            for token in tokens
        ]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_kill_9_during_a_burst_of_creations_loses_no_received_key(
    request: pytest.FixtureRequest, workspace: Workspace, launcher: ServerLauncher, database: str
) -> None:
    workspace.env_overrides.update(LIMITS)
    if database == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"crash_{uuid.uuid4().hex[:8]}")
        workspace.env_overrides["KEYPLANE_DATABASE_URL"] = url
    server = launcher.start()
    admin = parse_first_start(server.stdout()).token

    received = asyncio.run(_burst_until_killed(server.base_url, admin, server.kill))
    assert server.process.poll() is not None
    assert len(received) >= KILL_AFTER

    started = time.monotonic()
    again = launcher.start(port=server.port)
    assert time.monotonic() - started < 30
    statuses = _all_authenticate(again.base_url, [admin, *received])
    assert statuses == [200] * len(statuses), {s: statuses.count(s) for s in set(statuses)}
