"""Concurrent bursts from one address never test more credentials than its failure budget.

The budget is reserved before a credential is evaluated, so the requests of a
burst cannot all pass the "is this address allowed?" check before any of their
failures is counted. Both databases, in-process, and once with the limits in Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Identity
from keyplane.errors import Unavailable
from keyplane.services.container import Services
from tests.conftest import replica
from tests.factories import Factory, bearer

BUDGET = 10
LIMITS = {
    "ratelimit_auth_failures_per_minute": 1,
    "ratelimit_auth_failures_burst": BUDGET,
    "ratelimit_login_failures_per_minute": 1,
    "ratelimit_login_failures_burst": 3,
}
PASSWORD = "correct horse battery staple"


def wrong_key() -> str:
    return "vb" + "_" + uuid.uuid4().hex


class Counted:
    """Wraps an async callable and counts its calls."""

    def __init__(self, target: Callable[..., Awaitable[Any]]) -> None:
        self.target = target
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.target(*args, **kwargs)


def count_key_evaluations(services: Services) -> Counted:
    counted = Counted(services.auth.authenticate_accesskey)
    services.auth.authenticate_accesskey = counted  # type: ignore[method-assign]
    return counted


async def burst_of_wrong_keys(
    services: Services, http: httpx.AsyncClient, valid: str
) -> tuple[list[int], int, Counted]:
    evaluations = count_key_evaluations(services)
    tokens = [wrong_key() for _ in range(300)]
    tokens.insert(200, valid)  # a good key sent inside the burst
    responses = await asyncio.gather(
        *(http.get("/v1.0/accesskeys", headers=bearer(token)) for token in tokens)
    )
    for response in responses:
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()) == {"error"}, response.text
    statuses = [response.status_code for response in responses]
    return statuses, statuses.pop(200), evaluations


def assert_budget_held(statuses: list[int], valid_status: int, evaluations: Counted) -> None:
    assert evaluations.calls <= BUDGET
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= BUDGET
    assert valid_status == 429


async def test_a_burst_of_wrong_keys_tests_at_most_the_budget(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **LIMITS) as node:
        valid = await Factory(node.services).identity_token(await Factory(node.services).customer())
        async with node.client("10.9.0.1") as http:
            statuses, valid_status, evaluations = await burst_of_wrong_keys(
                node.services, http, valid
            )
            assert_budget_held(statuses, valid_status, evaluations)
            # Once spent, even the valid key is refused from this address.
            after = await http.get("/v1.0/accesskeys", headers=bearer(valid))
            assert after.status_code == 429
            assert after.json()["error"]["reason"] == "RATE_LIMIT_EXCEEDED"
        async with node.client("10.9.0.2") as elsewhere:
            ok = await elsewhere.get("/v1.0/accesskeys", headers=bearer(valid))
            assert ok.status_code == 200, ok.text


async def test_a_burst_of_wrong_keys_tests_at_most_the_budget_with_redis_limits(
    tmp_path: Path, clock: FrozenClock, redis_url: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"
    async with replica(tmp_path, database_url, clock, redis_url=redis_url, **LIMITS) as node:
        factory = Factory(node.services)
        valid = await factory.identity_token(await factory.customer())
        async with node.client("10.9.0.3") as http:
            statuses, valid_status, evaluations = await burst_of_wrong_keys(
                node.services, http, valid
            )
    assert_budget_held(statuses, valid_status, evaluations)


async def test_a_burst_of_logins_runs_at_most_the_budget_of_password_checks(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, **LIMITS) as node:
        factory = Factory(node.services)
        agent = await factory.agent(await factory.customer(), password=PASSWORD)
        checks = Counted(node.services.passwords.verify)
        node.services.passwords.verify = checks  # type: ignore[method-assign]
        bodies = [
            {"username": f"nobody-{index}-{uuid.uuid4().hex[:6]}", "password": "wrong"}
            for index in range(119)
        ]
        bodies.insert(100, {"username": agent.username, "password": PASSWORD})
        async with node.client("10.9.0.4") as http:
            responses = await asyncio.gather(*(http.post("/auth/login", json=b) for b in bodies))
            statuses = [response.status_code for response in responses]
            assert checks.calls <= BUDGET
            right = statuses.pop(100)
            assert right == 429
            assert 200 not in statuses
            assert {s // 100 for s in statuses} == {4}
            assert statuses.count(429) >= len(statuses) - BUDGET
        async with node.client("10.9.0.5") as elsewhere:
            ok = await elsewhere.post(
                "/auth/login", json={"username": agent.username, "password": PASSWORD}
            )
            assert ok.status_code == 200, ok.text


async def test_good_credentials_give_their_slot_back(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """Many more good requests than the budget, in parallel, none refused."""
    async with replica(tmp_path, database_url, clock, **LIMITS) as node:
        factory = Factory(node.services)
        customer = await factory.customer()
        agent = await factory.agent(customer, password=PASSWORD)
        keys = [await factory.identity_token(customer) for _ in range(BUDGET * 3)]
        async with node.client("10.9.0.6") as http:
            responses = await asyncio.gather(
                *(http.get("/v1.0/customer", headers=bearer(key)) for key in keys)
            )
            assert [r.status_code for r in responses] == [200] * len(keys)
            for _ in range(BUDGET * 2):
                login = await http.post(
                    "/auth/login", json={"username": agent.username, "password": PASSWORD}
                )
                assert login.status_code == 200, login.text
            budget = await node.services.ratelimits.limiter.peek(
                node.services.ratelimits.auth_failures, "ip:10.9.0.6"
            )
            assert budget.remaining == BUDGET - 1  # peek itself asks for one


async def test_no_verdict_gives_the_slot_back(
    services: Services, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that is away refuses nothing: the address keeps its budget."""
    from keyplane.services.auth import Credential

    async def unavailable(token: str) -> Identity:
        raise Unavailable()

    monkeypatch.setattr(services.auth, "authenticate_accesskey", unavailable)
    before = await services.ratelimits.limiter.peek(services.ratelimits.auth_failures, "ip:x")
    for _ in range(services.ratelimits.auth_failures.burst * 2):
        with pytest.raises(Unavailable):
            await services.auth.authenticate(Credential("accesskey", wrong_key(), "h"), client="x")
    after = await services.ratelimits.limiter.peek(services.ratelimits.auth_failures, "ip:x")
    assert after.remaining == before.remaining


async def _login_budgets(services: Services, username: str, client: str) -> tuple[int, int]:
    limits = services.ratelimits
    user = await limits.limiter.peek(limits.login_failures, f"user:{username}|{client}")
    address = await limits.limiter.peek(limits.auth_failures, f"ip:{client}")
    return user.remaining, address.remaining


@pytest.mark.parametrize("outcome", ["unavailable", "timeout", "cancelled"])
async def test_a_login_without_a_verdict_gives_both_slots_back(
    services: Services, factory: Factory, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    """Logins retried during an outage, timing out or cancelled never lock the user out."""
    from keyplane.store.agents import AgentRepository

    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    before = await _login_budgets(services, agent.username, "10.9.1.1")
    reached = asyncio.Event()
    real_read = AgentRepository.get_active_by_username

    async def failing_read(self: AgentRepository, username: str) -> Any:
        reached.set()
        if outcome == "unavailable":
            raise Unavailable()
        if outcome == "timeout":
            raise TimeoutError()
        await asyncio.Event().wait()  # never answers: the caller cancels

    monkeypatch.setattr(AgentRepository, "get_active_by_username", failing_read)
    expected: type[BaseException] = {
        "unavailable": Unavailable,
        "timeout": Unavailable,  # the store reports a timed-out read as unavailable
        "cancelled": asyncio.CancelledError,
    }[outcome]
    for _ in range(services.ratelimits.login_failures.burst * 3):
        reached.clear()
        attempt = asyncio.ensure_future(
            services.auth.login(agent.username, PASSWORD, client="10.9.1.1")
        )
        # An attempt refused by its budget ends without reaching the read.
        read = asyncio.ensure_future(reached.wait())
        await asyncio.wait({attempt, read}, return_when=asyncio.FIRST_COMPLETED)
        read.cancel()
        if outcome == "cancelled" and not attempt.done():
            attempt.cancel()
        with pytest.raises(expected):
            await attempt
    assert await _login_budgets(services, agent.username, "10.9.1.1") == before
    monkeypatch.setattr(AgentRepository, "get_active_by_username", real_read)
    logged_in, token = await services.auth.login(agent.username, PASSWORD, client="10.9.1.1")
    assert logged_in.id == agent.id
    assert token.count(".") == 2
