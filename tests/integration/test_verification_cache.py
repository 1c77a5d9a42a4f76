"""The verification cache in the running service, and invalidation between replicas.

HTTP tests run on SQLite and PostgreSQL; the Redis ones use the real Redis of the
``redis_server`` fixture, flushed before each test (and restarted if a test stopped it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyplane.cache.invalidation import CHANNEL, Invalidation, RedisInvalidator
from keyplane.cache.verification import MISS, VerificationCache, VerifiedAgent, VerifiedKey
from keyplane.domain import tokens
from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from keyplane.store.accesskeys import AccesskeyRepository
from tests.conftest import started_replica
from tests.factories import ONE_DAY, OPERATOR, Factory, bearer, fake_token
from tests.servers import RedisServer
from tests.ticker import Ticker

EXPIRE = datetime(2027, 12, 1, tzinfo=UTC)


# Helpers ---------------------------------------------------------------------


def count_hash_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every database lookup of an access key by hash, from now on."""
    calls: list[str] = []
    original = AccesskeyRepository.get_by_hash

    async def counting(self: AccesskeyRepository, token_hash: str) -> object:
        calls.append(token_hash)
        return await original(self, token_hash)

    monkeypatch.setattr(AccesskeyRepository, "get_by_hash", counting)
    return calls


async def eventually(check: Callable[[], bool], *, within: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


async def eventually_async(
    check: Callable[[], Awaitable[bool]], *, within: float, step: float = 0.05
) -> bool:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def assert_invalid_credentials(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["reason"] == "INVALID_CREDENTIALS"


# Through HTTP, one replica, both databases -----------------------------------


async def test_a_verified_key_is_served_from_the_cache(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = await factory.customer()
    token = await factory.identity_token(customer)
    lookups = count_hash_lookups(monkeypatch)

    first = await client.get("/v1.0/accesskeys", headers=bearer(token))
    assert first.status_code == 200, first.text
    assert lookups == [tokens.hash_token(token)]

    second = await client.get("/v1.0/accesskeys", headers=bearer(token))
    assert second.status_code == 200, second.text
    assert len(lookups) == 1  # verified without the database


async def test_an_unknown_key_is_cached_as_unknown(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = count_hash_lookups(monkeypatch)
    unknown = fake_token("Q")
    for _ in range(3):
        assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(unknown)))
    assert lookups == [tokens.hash_token(unknown)]


async def test_a_deleted_key_is_refused_at_once_although_it_was_cached(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = await factory.customer()
    victim, victim_token = await factory.accesskey(customer)
    admin_token = await factory.identity_token(customer)
    lookups = count_hash_lookups(monkeypatch)

    for _ in range(2):
        response = await client.get("/v1.0/accesskeys", headers=bearer(victim_token))
        assert response.status_code == 200, response.text
    assert lookups == [tokens.hash_token(victim_token)]  # cached

    deleted = await client.delete(f"/v1.0/accesskeys/{victim.id}", headers=bearer(admin_token))
    assert deleted.status_code == 200, deleted.text

    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(victim_token)))
    assert_invalid_credentials(
        await client.get("/v1.0/accesskeys", params={"accesskey": victim_token})
    )


async def test_a_key_deleting_itself_is_refused_at_once(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    assert (await client.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200
    deleted = await client.delete(f"/v1.0/accesskeys/{key.id}", headers=bearer(token))
    assert deleted.status_code == 200, deleted.text
    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(token)))


async def test_a_cached_key_is_refused_the_moment_it_expires(
    client: httpx.AsyncClient,
    factory: Factory,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer, expire=ONE_DAY)
    lookups = count_hash_lookups(monkeypatch)
    assert (await client.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200

    clock.set(key.tm_expire - timedelta(microseconds=1))
    assert (await client.get("/v1.0/accesskeys", headers=bearer(token))).status_code == 200

    clock.set(key.tm_expire)
    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(token)))
    # Refused from the cached entry: the database was read once only.
    assert len(lookups) == 1


async def test_a_lookup_that_raced_a_delete_does_not_cache_the_key(
    client: httpx.AsyncClient,
    services: Services,
    factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup reads the live key, the key is deleted, then the lookup stores."""
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    original = AccesskeyRepository.get_by_hash
    raced: list[bool] = []

    async def read_then_delete(self: AccesskeyRepository, token_hash: str) -> object:
        found = await original(self, token_hash)
        if not raced:
            raced.append(True)
            await services.accesskeys.delete(OPERATOR, key.id)  # commits and invalidates
        return found

    monkeypatch.setattr(AccesskeyRepository, "get_by_hash", read_then_delete)

    # This request read the key before the delete: it may pass...
    response = await client.get("/v1.0/accesskeys", headers=bearer(token))
    assert raced == [True]
    assert response.status_code == 200, response.text
    # ...but what it read must not be kept.
    assert services.cache.get_key(tokens.hash_token(token)) is MISS
    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(token)))


async def test_a_stale_generation_put_after_a_delete_is_dropped(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    admin_token = await factory.identity_token(customer)
    token_hash = tokens.hash_token(token)

    generation = services.cache.generation
    async with services.database.reader() as repos:
        read = await repos.accesskeys.get_by_hash(token_hash)
    assert read is not None
    assert read.tm_delete is None
    deleted = await client.delete(f"/v1.0/accesskeys/{key.id}", headers=bearer(admin_token))
    assert deleted.status_code == 200, deleted.text
    services.cache.put_key(
        token_hash, VerifiedKey(read.id, read.customer_id, read.tm_expire), generation
    )

    assert services.cache.get_key(token_hash) is MISS
    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(token)))


async def test_deleting_the_customer_refuses_its_cached_keys(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer, other = await factory.customer(), await factory.customer()
    token, other_token = await factory.identity_token(customer), await factory.identity_token(other)
    for credential in (token, other_token):
        assert (await client.get("/v1.0/accesskeys", headers=bearer(credential))).status_code == 200

    await services.customers.delete_customer(OPERATOR, customer.id)

    assert_invalid_credentials(await client.get("/v1.0/accesskeys", headers=bearer(token)))
    assert (await client.get("/v1.0/accesskeys", headers=bearer(other_token))).status_code == 200


async def test_a_deleted_agents_cached_session_is_refused_at_once(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password="pw-1234567890ab")
    login = await client.post(
        "/auth/login", json={"username": agent.username, "password": "pw-1234567890ab"}
    )
    assert login.status_code == 200, login.text
    session = login.json()["token"]
    assert (await client.get("/v1.0/customer", headers=bearer(session))).status_code == 200
    assert isinstance(services.cache.get_agent(agent.id), VerifiedAgent)

    await services.customers.delete_agent(OPERATOR, agent.id)

    assert_invalid_credentials(await client.get("/v1.0/customer", headers=bearer(session)))


# RedisInvalidator against a real Redis ---------------------------------------


@asynccontextmanager
async def invalidating_cache(
    redis_url: str, *, monotonic: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[VerificationCache, RedisInvalidator]]:
    cache = VerificationCache(ttl=60.0, fallback_ttl=1.0, negative_ttl=10.0, monotonic=monotonic)
    invalidator = RedisInvalidator(cache, redis_url)
    await invalidator.start()
    try:
        yield cache, invalidator
    finally:
        await invalidator.stop()


def a_key() -> tuple[str, VerifiedKey]:
    token = tokens.generate_token()
    return tokens.hash_token(token), VerifiedKey(uuid.uuid4(), uuid.uuid4(), EXPIRE)


async def test_an_invalidation_reaches_the_other_replica(redis_url: str) -> None:
    async with invalidating_cache(redis_url) as (a, a_inv), invalidating_cache(redis_url) as (b, _):
        assert await eventually(lambda: a.connected and b.connected, within=3.0)
        assert b.positive_ttl == 60.0
        token_hash, key = a_key()
        a.put_key(token_hash, key, a.generation)
        b.put_key(token_hash, key, b.generation)

        await a_inv.publish(Invalidation("accesskey", key.id, token_hash))

        assert a.get_key(token_hash) is MISS  # evicted locally at once
        assert await eventually(lambda: b.get_key(token_hash) is MISS, within=1.0)


async def test_agent_and_customer_invalidations_reach_the_other_replica(redis_url: str) -> None:
    async with invalidating_cache(redis_url) as (a, a_inv), invalidating_cache(redis_url) as (b, _):
        assert await eventually(lambda: a.connected and b.connected, within=3.0)
        agent = VerifiedAgent(uuid.uuid4(), uuid.uuid4(), 32)
        token_hash, key = a_key()
        kept_hash, kept = a_key()
        b.put_agent(agent.id, agent, b.generation)
        b.put_key(token_hash, key, b.generation)
        b.put_key(kept_hash, kept, b.generation)

        await a_inv.publish(Invalidation("agent", agent.id))
        await a_inv.publish(Invalidation("customer", key.customer_id))

        assert await eventually(
            lambda: b.get_agent(agent.id) is MISS and b.get_key(token_hash) is MISS, within=1.0
        )
        assert b.get_key(kept_hash) == kept


async def test_without_redis_the_cache_falls_back_and_recovers(
    redis_server: RedisServer, redis_url: str
) -> None:
    ticker = Ticker()
    async with (
        invalidating_cache(redis_url) as (a, a_inv),
        invalidating_cache(redis_url, monotonic=ticker) as (b, _),
    ):
        assert await eventually(lambda: a.connected and b.connected, within=3.0)
        token_hash, key = a_key()
        b.put_key(token_hash, key, b.generation)  # cached for the full TTL
        try:
            redis_server.stop()
            # B learns that it can no longer hear invalidations, and forgets what it had.
            assert await eventually(lambda: not b.connected, within=2.0)
            assert b.get_key(token_hash) is MISS
            assert b.positive_ttl == 1.0

            # Publishing during the outage does not fail; A evicts locally.
            a.put_key(token_hash, key, a.generation)
            await a_inv.publish(Invalidation("accesskey", key.id, token_hash))
            assert a.get_key(token_hash) is MISS
            assert await eventually(lambda: not a.connected, within=2.0)

            # New entries on B live for the fallback TTL only.
            b.put_key(token_hash, key, b.generation)
            ticker.now += 0.99
            assert b.get_key(token_hash) == key
            ticker.now += 0.01
            assert b.get_key(token_hash) is MISS
            b.put_key(token_hash, key, b.generation)  # to be dropped on reconnect
        finally:
            if redis_server.process is None:
                redis_server.start()

        assert await eventually(lambda: a.connected and b.connected, within=5.0)
        assert b.positive_ttl == 60.0
        assert b.get_key(token_hash) is MISS  # started afresh

        # Invalidations flow again.
        other_hash, other = a_key()
        b.put_key(other_hash, other, b.generation)
        await a_inv.publish(Invalidation("accesskey", other.id, other_hash))
        assert await eventually(lambda: b.get_key(other_hash) is MISS, within=1.0)


# Two replicas through HTTP ---------------------------------------------------


async def test_a_key_deleted_on_one_replica_is_refused_on_the_other(
    tmp_path: Path, database_url: str, clock: FrozenClock, redis_url: str
) -> None:
    async with (
        started_replica(tmp_path, database_url, clock, fresh=True, redis_url=redis_url) as (
            a,
            a_http,
        ),
        started_replica(tmp_path, database_url, clock, fresh=False, redis_url=redis_url) as (
            b,
            b_http,
        ),
    ):
        assert await eventually(lambda: a.cache.connected and b.cache.connected, within=3.0)
        factory = Factory(a)
        customer = await factory.customer()
        victim, victim_token = await factory.accesskey(customer)
        admin_token = await factory.identity_token(customer)

        assert (
            await b_http.get("/v1.0/accesskeys", headers=bearer(victim_token))
        ).status_code == 200
        assert b.cache.get_key(tokens.hash_token(victim_token)) is not MISS  # cached on B

        deleted = await a_http.delete(f"/v1.0/accesskeys/{victim.id}", headers=bearer(admin_token))
        assert deleted.status_code == 200, deleted.text

        async def refused_on_b() -> bool:
            response = await b_http.get("/v1.0/accesskeys", headers=bearer(victim_token))
            return response.status_code == 401

        assert await eventually_async(refused_on_b, within=1.0)


async def test_without_redis_a_deleted_key_lives_on_another_replica_one_second_at_most(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        started_replica(tmp_path, database_url, clock, fresh=True) as (a, a_http),
        started_replica(tmp_path, database_url, clock, fresh=False) as (b, b_http),
    ):
        assert not b.cache.connected
        factory = Factory(a)
        customer = await factory.customer()
        victim, victim_token = await factory.accesskey(customer)
        admin_token = await factory.identity_token(customer)
        assert (
            await b_http.get("/v1.0/accesskeys", headers=bearer(victim_token))
        ).status_code == 200
        deleted = await a_http.delete(f"/v1.0/accesskeys/{victim.id}", headers=bearer(admin_token))
        assert deleted.status_code == 200, deleted.text
        started = time.monotonic()

        async def refused_on_b() -> bool:
            response = await b_http.get("/v1.0/accesskeys", headers=bearer(victim_token))
            return response.status_code == 401

        assert await eventually_async(refused_on_b, within=1.3, step=0.1)
        assert time.monotonic() - started <= 1.3


# Robustness of the channel ---------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    ["not json", '{"id": "x"}', '{"kind": "agent", "id": 5}', '{"kind": "comet", "id": "x"}'],
    ids=["not-json", "no-kind", "int-id", "unknown-kind"],
)
async def test_a_malformed_message_does_not_stop_the_listener(redis_url: str, garbage: str) -> None:
    async with invalidating_cache(redis_url) as (a, a_inv), invalidating_cache(redis_url) as (b, _):
        assert await eventually(lambda: a.connected and b.connected, within=3.0)
        raw = aioredis.Redis.from_url(redis_url)
        try:
            await raw.publish(CHANNEL, garbage)
        finally:
            await raw.aclose()
        await asyncio.sleep(0.2)
        # Still (or again) listening, with the full TTL...
        assert await eventually(lambda: b.connected, within=1.5)
        # ...and invalidations still arrive.
        token_hash, key = a_key()
        b.put_key(token_hash, key, b.generation)
        await a_inv.publish(Invalidation("accesskey", key.id, token_hash))
        assert await eventually(lambda: b.get_key(token_hash) is MISS, within=1.0)


def fail_publishing_once(monkeypatch: pytest.MonkeyPatch, invalidator: RedisInvalidator) -> None:
    """The publisher's connection fails once (a blip between this replica and Redis)."""
    publisher = invalidator._publisher
    original = publisher.publish
    failures = [RedisConnectionError("blip")]

    async def flaky(channel: str, message: str) -> int:
        if failures:
            raise failures.pop()
        result: int = await original(channel, message)
        return result

    monkeypatch.setattr(publisher, "publish", flaky)


async def test_after_a_failed_publish_the_cache_returns_to_the_full_ttl(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with invalidating_cache(redis_url) as (a, a_inv):
        assert await eventually(lambda: a.connected, within=3.0)
        fail_publishing_once(monkeypatch, a_inv)
        await a_inv.publish(Invalidation("agent", uuid.uuid4()))
        # The listener never stopped hearing Redis: the fallback must not last for good.
        assert await eventually(lambda: a.connected, within=1.5)
        assert a.positive_ttl == 60.0


async def test_a_deletion_whose_publish_failed_still_reaches_the_other_replica(
    tmp_path: Path,
    database_url: str,
    clock: FrozenClock,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The revocation log carries what pub/sub lost; else B would wait out its full TTL."""
    async with (
        started_replica(tmp_path, database_url, clock, fresh=True, redis_url=redis_url) as (
            a,
            _,
        ),
        started_replica(tmp_path, database_url, clock, fresh=False, redis_url=redis_url) as (
            b,
            b_http,
        ),
    ):
        assert await eventually(lambda: a.cache.connected and b.cache.connected, within=3.0)
        assert b.cache.positive_ttl == 60.0
        key, token = await Factory(a).accesskey(await Factory(a).customer())
        ok = await b_http.get("/v1.0/accesskeys", headers=bearer(token))
        assert ok.status_code == 200  # now cached on B, for the full TTL
        assert isinstance(a.invalidator, RedisInvalidator)
        fail_publishing_once(monkeypatch, a.invalidator)
        await a.accesskeys.delete(OPERATOR, key.id)
        deleted_at = time.monotonic()

        async def refused() -> bool:
            response = await b_http.get("/v1.0/accesskeys", headers=bearer(token))
            return response.status_code == 401

        assert await eventually_async(refused, within=1.0, step=0.02)
        assert time.monotonic() - deleted_at < 1.0
