"""Admission of verification cache misses: a flood of unknown keys waits or is refused
(503 in the contract's envelope, with Retry-After) while known keys are answered."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Identity
from keyplane.services.container import Services
from tests.conftest import replica
from tests.factories import Factory, bearer, fake_token

GUARD_SECONDS = 10  # far above what these in-process steps take
GATE = {"verify_miss_concurrency": 1, "verify_miss_queue": 0}


def hold_evaluations_of(services: Services, token: str, release: anyio.Event) -> None:
    """The evaluation of ``token`` stays in progress until ``release``."""
    real = services.auth.authenticate_accesskey

    async def held(value: str) -> Identity:
        if value == token:
            await release.wait()
        return await real(value)

    services.auth.authenticate_accesskey = held  # type: ignore[method-assign]


def assert_overloaded(response: httpx.Response, token: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["reason"] == "SERVICE_UNAVAILABLE"
    assert "Retry-After" in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"] == "1"
    assert token not in response.text


async def test_a_miss_beyond_the_queue_is_refused_while_known_keys_pass(
    tmp_path: Path, clock: FrozenClock
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"
    async with replica(tmp_path, database_url, clock, **GATE) as node:
        factory = Factory(node.services)
        valid = await factory.identity_token(await factory.customer())
        first, second = fake_token("a"), fake_token("b")
        release = anyio.Event()
        hold_evaluations_of(node.services, first, release)
        statuses: list[int] = []
        async with node.client("10.8.0.1") as http:
            assert (await http.get("/auth/verify", headers=bearer(valid))).status_code == 200

            async def verify(token: str) -> None:
                statuses.append((await http.get("/auth/verify", headers=bearer(token))).status_code)

            with anyio.fail_after(GUARD_SECONDS):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(verify, first)  # admitted, held in evaluation
                    await anyio.wait_all_tasks_blocked()
                    assert_overloaded(
                        await http.get("/auth/verify", headers=bearer(second)), second
                    )
                    assert_overloaded(
                        await http.get("/v1.0/accesskeys", headers=bearer(second)), second
                    )
                    # A key this replica knows needs no admission.
                    known = await http.get("/auth/verify", headers=bearer(valid))
                    assert known.status_code == 200, known.text
                    release.set()
            assert statuses == [401]
            # The refused misses took nothing from the address's failure budget.
            budget = await node.services.ratelimits.limiter.peek(
                node.services.ratelimits.auth_failures, "ip:10.8.0.1"
            )
            burst = node.services.ratelimits.auth_failures.burst
            assert budget.remaining == burst - 2  # the one refused key, and peek's own unit
            # Once the gate is free, the next unknown key is evaluated and refused as such.
            later = await http.get("/auth/verify", headers=bearer(second))
            assert later.status_code == 401, later.text
