"""The revocation log: every replica learns every revocation, once, whatever pub/sub did."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert

from keyplane.cache.invalidation import Invalidation
from keyplane.cache.verification import MISS, VerificationCache, VerifiedKey
from keyplane.domain import tokens
from keyplane.domain.clock import FrozenClock
from keyplane.services import revocations as revocations_module
from keyplane.services.container import Services, build_services
from keyplane.services.revocations import RevocationFollower, record_revocation
from keyplane.settings import Settings
from keyplane.store.tables import revocations
from tests.conftest import START, empty_tables, make_settings
from tests.servers import PostgresServer


def cached_key(cache: VerificationCache) -> tuple[str, uuid.UUID]:
    token_hash = tokens.hash_token(tokens.generate_token())
    key_id = uuid.uuid4()
    cache.put_key(token_hash, VerifiedKey(key_id, uuid.uuid4(), START), cache.generation)
    return token_hash, key_id


async def revoke(services: Services, key_id: uuid.UUID, token_hash: str) -> None:
    async with services.database.transaction() as repos:
        await record_revocation(
            repos, Invalidation("accesskey", key_id, token_hash), services.clock.now()
        )


def follower_for(services: Services) -> tuple[RevocationFollower, VerificationCache]:
    cache = VerificationCache(ttl=60.0)
    cache.set_connected(True)
    return RevocationFollower(services.database, cache, services.clock), cache


async def test_each_revocation_is_applied_once(services: Services) -> None:
    follower, cache = follower_for(services)
    assert await follower.poll() == 0  # starts from the end of the log
    first, second = cached_key(cache), cached_key(cache)
    await revoke(services, first[1], first[0])
    await revoke(services, second[1], second[0])
    assert await follower.poll() == 2
    assert cache.get_key(first[0]) is MISS
    assert cache.get_key(second[0]) is MISS
    assert await follower.poll() == 0


async def test_revocations_from_before_the_start_are_not_replayed(services: Services) -> None:
    token_hash, key_id = cached_key(VerificationCache())
    await revoke(services, key_id, token_hash)
    follower, cache = follower_for(services)
    generation = cache.generation
    assert await follower.poll() == 0
    assert await follower.poll() == 0
    assert cache.generation == generation  # nothing was invalidated


@pytest.mark.parametrize("uptime", [5.0, 86_400.0], ids=["booted-a-minute-ago", "up-a-day"])
async def test_old_entries_are_pruned(
    services: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, uptime: float
) -> None:
    # time.monotonic() is about the uptime on Linux: the first prune must not wait for it.
    monkeypatch.setattr(revocations_module, "time", SimpleNamespace(monotonic=lambda: uptime))
    token_hash, key_id = cached_key(VerificationCache())
    await revoke(services, key_id, token_hash)
    clock.advance(2 * 86_400)
    follower, _ = follower_for(services)
    await follower.poll()
    await follower._prune()
    async with services.database.reader() as repos:
        assert await repos.revocations.after(0) == []


@pytest.fixture
async def pg_services(postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[Services]:
    """PostgreSQL only: commits out of order and rolled-back numbers need two writers."""
    built = build_services(
        make_settings(tmp_path, database_url=postgres.url()), clock=FrozenClock(START)
    )
    await built.migrate()
    await empty_tables(built)
    try:
        yield built
    finally:
        await built.close()


def _row(key_id: uuid.UUID, token_hash: str) -> dict[str, object]:
    return {"kind": "accesskey", "subject_id": key_id, "token_hash": token_hash, "tm_create": START}


async def test_a_revocation_committed_out_of_order_is_not_missed(pg_services: Services) -> None:
    follower, cache = follower_for(pg_services)
    await follower.poll()
    slow, fast = cached_key(cache), cached_key(cache)
    engine = pg_services.database.engine
    async with engine.connect() as slow_conn:
        transaction = await slow_conn.begin()
        # Takes the lower sequence number, but commits last.
        await slow_conn.execute(insert(revocations).values(_row(slow[1], slow[0])))
        await revoke(pg_services, fast[1], fast[0])
        assert await follower.poll() == 1
        assert cache.get_key(fast[0]) is MISS
        assert cache.get_key(slow[0]) is not MISS
        await transaction.commit()
    assert await follower.poll() == 1
    assert cache.get_key(slow[0]) is MISS
    assert follower._gaps == {}  # nothing left to wait for


async def test_a_number_never_committed_is_passed_over_in_time(
    pg_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower, cache = follower_for(pg_services)
    await follower.poll()
    start = follower._low
    assert start is not None
    rolled_back = cached_key(cache)
    async with pg_services.database.engine.connect() as conn:
        transaction = await conn.begin()
        await conn.execute(insert(revocations).values(_row(rolled_back[1], rolled_back[0])))
        await transaction.rollback()
    later = cached_key(cache)
    await revoke(pg_services, later[1], later[0])
    assert await follower.poll() == 1
    assert follower._low == start  # still waiting for the missing number
    monkeypatch.setattr(revocations_module, "GAP_PATIENCE_SECONDS", -1.0)
    assert await follower.poll() == 0
    assert follower._low == start + 2  # passed over the gap and past the later one
    assert cache.get_key(rolled_back[0]) is not MISS


async def test_a_revocation_after_the_log_was_pruned_empty_is_not_skipped(
    services: Services, settings: Settings, clock: FrozenClock
) -> None:
    """Numbers are never reused: SQLite once gave 1 again after a prune emptied the log."""
    other = build_services(settings, clock=clock)  # a second process on the same database
    try:
        follower, cache = follower_for(other)
        await follower.poll()
        first = cached_key(cache)
        await revoke(services, first[1], first[0])
        assert await follower.poll() == 1

        clock.advance(2 * 86_400)
        pruner, _ = follower_for(services)
        await pruner.poll()
        await pruner._prune()
        async with services.database.reader() as repos:
            assert await repos.revocations.after(0) == []  # the log is empty now

        second = cached_key(cache)
        await revoke(services, second[1], second[0])
        assert await follower.poll() == 1
        assert cache.get_key(second[0]) is MISS
    finally:
        await other.close()


async def test_deleting_an_agent_reaches_a_replica_that_missed_the_message(
    services: Services,
) -> None:
    """Only the log tells a replica without Redis that an agent's sessions are over."""
    from keyplane.cache.verification import VerifiedAgent
    from tests.factories import OPERATOR, Factory

    factory = Factory(services)
    agent = await factory.agent(await factory.customer())
    follower, cache = follower_for(services)  # another replica's cache: no message reaches it
    assert await follower.poll() == 0
    cache.put_agent(
        agent.id, VerifiedAgent(agent.id, agent.customer_id, agent.permission), cache.generation
    )
    assert isinstance(cache.get_agent(agent.id), VerifiedAgent)  # positive control
    await services.customers.delete_agent(OPERATOR, agent.id)
    assert await follower.poll() == 1
    assert cache.get_agent(agent.id) is MISS


async def test_pruning_keeps_the_entries_of_the_last_day(
    services: Services, clock: FrozenClock
) -> None:
    old_hash, old_id = cached_key(VerificationCache())
    await revoke(services, old_id, old_hash)
    clock.advance(2 * 86_400)
    recent_hash, recent_id = cached_key(VerificationCache())
    await revoke(services, recent_id, recent_hash)
    follower, _ = follower_for(services)
    await follower._prune()
    async with services.database.reader() as repos:
        left = await repos.revocations.after(0)
    assert [entry.subject_id for entry in left] == [recent_id]
