"""The authentication service below HTTP: what a login stores, and what a credential proves."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyplane.cache.verification import VerifiedAgent
from keyplane.domain.passwords import Argon2Parameters, PasswordHashing
from keyplane.errors import InvalidCredentials, LoginRefused
from keyplane.services import auth as auth_module
from keyplane.services.auth import Credential, PasswordWorker
from keyplane.services.container import Services
from tests.factories import Factory

PASSWORD = "correct horse " + "battery staple"


def test_a_credentials_repr_never_shows_its_value() -> None:
    value = "vb_" + "A" * 32
    shown = repr(Credential("accesskey", value, "query"))
    assert shown == "Credential(kind='accesskey', source='query', value=<redacted>)"


async def stored_hash(services: Services, agent_id: uuid.UUID) -> str:
    async with services.database.reader() as repos:
        agent = await repos.agents.get_active(agent_id)
    assert agent is not None
    return agent.password_hash


async def test_a_login_upgrades_a_hash_made_with_older_parameters(
    services: Services, factory: Factory
) -> None:
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    older = PasswordHashing(Argon2Parameters(memory_kib=20 * 1024, time_cost=2, parallelism=1))
    old_hash = older.hash(PASSWORD)
    async with services.database.transaction() as repos:
        await repos.agents.set_password_hash(agent.id, old_hash)
    found, _ = await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    assert found.id == agent.id
    new_hash = await stored_hash(services, agent.id)
    assert new_hash != old_hash
    assert not services.passwords.hashing.needs_rehash(new_hash)
    assert services.passwords.hashing.verify(new_hash, PASSWORD)
    await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    assert await stored_hash(services, agent.id) == new_hash  # current: left as it is


async def test_a_login_is_audited_as_the_agent_creating_a_session(
    services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    async with services.database.reader() as repos:
        entries = await repos.audit.page(
            customer.id,
            types=frozenset({"session_created"}),
            since=None,
            until=None,
            before=None,
            limit=10,
        )
    assert [(e.actor_type, e.actor_id, e.subject_id, e.tm_create) for e in entries] == [
        ("agent", agent.id, agent.id, services.clock.now())
    ]


async def test_an_empty_username_is_refused_like_a_wrong_one(services: Services) -> None:
    with pytest.raises(LoginRefused):
        await services.auth.login("", PASSWORD, client="127.0.0.1")


async def test_a_session_is_refused_when_its_agent_is_now_of_another_customer(
    services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    _, token = await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    credential = Credential("session", token, "header")
    identity, _ = await services.auth.authenticate(credential, client="127.0.0.1")
    assert (identity.type, identity.id, identity.customer_id) == ("agent", agent.id, customer.id)
    assert services.auth.already_verified(credential) == identity  # the cache vouches
    cache = services.cache
    moved = VerifiedAgent(agent.id, uuid.uuid4(), agent.permission)
    cache.put_agent(agent.id, moved, cache.generation)
    assert services.auth.already_verified(credential) is None
    with pytest.raises(InvalidCredentials):
        await services.auth.authenticate(credential, client="127.0.0.1")


class HeldHashing:
    """Password hashing that holds each call until released, counting calls at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entered = asyncio.Event()
        self.release = threading.Event()

    def _hold(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self._loop.call_soon_threadsafe(self.entered.set)
        self.release.wait(10)
        with self._lock:
            self.inside -= 1

    def hash(self, password: str) -> str:
        self._hold()
        return "hashed"

    def verify(self, password_hash: str | None, password: str) -> bool:
        self._hold()
        return False


@pytest.mark.parametrize("operation", ["hash", "verify"])
async def test_password_work_runs_no_more_than_its_concurrency_at_once(operation: str) -> None:
    hashing = HeldHashing(asyncio.get_running_loop())
    worker = PasswordWorker(hashing, concurrency=1)  # type: ignore[arg-type]

    def call() -> Awaitable[object]:
        return worker.hash("x") if operation == "hash" else worker.verify(None, "x")

    first = asyncio.ensure_future(call())
    await hashing.entered.wait()
    hashing.entered.clear()
    second = asyncio.ensure_future(call())
    # The second may not start while the first runs: give it the time it would need.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(hashing.entered.wait(), 0.2)
    hashing.release.set()
    await asyncio.gather(first, second)
    assert hashing.most == 1


def duration_sums(services: Services) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(services.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name.endswith("_duration_seconds_sum"):
                found[sample.name] = sample.value
    return found


async def test_login_and_verification_durations_are_measured_from_start_to_end(
    services: Services, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    readings = iter([100.0, 100.25, 200.0, 200.5])
    monkeypatch.setattr(auth_module, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    _, token = await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    await services.auth.authenticate(Credential("session", token, "header"), client="127.0.0.1")
    sums = duration_sums(services)
    assert sums["keyplane_login_duration_seconds_sum"] == 0.25
    assert sums["keyplane_verification_duration_seconds_sum"] == 0.5
