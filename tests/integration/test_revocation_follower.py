"""The revocation follower in one process: gaps, the low-water mark, pruning and its loop.

Sequence numbers are written explicitly here, so that a number committed late
or never committed can be shown on SQLite as well as on PostgreSQL. The
follower's monotonic clock is replaced by one the test moves, and its loop is
stepped one round at a time, so nothing here waits for real time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from keyplane.cache.verification import MISS, VerificationCache, VerifiedAgent, VerifiedKey
from keyplane.domain import tokens
from keyplane.domain.clock import FrozenClock
from keyplane.errors import Unavailable
from keyplane.metrics import Metrics
from keyplane.services import revocations as revocations_module
from keyplane.services.auth import Credential
from keyplane.services.container import Services, build_services
from keyplane.services.revocations import RevocationFollower
from keyplane.settings import Settings
from keyplane.store.repositories import Repositories
from tests.conftest import START
from tests.factories import OPERATOR, Factory
from tests.logcapture import captured_logging
from tests.ticker import Ticker, tick


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    """The follower's ``time.monotonic``, moved by the test."""
    return tick(monkeypatch, revocations_module)


def follower_for(
    services: Services, metrics: Metrics | None = None
) -> tuple[RevocationFollower, VerificationCache]:
    cache = VerificationCache(ttl=60.0)
    cache.set_connected(True)
    follower = RevocationFollower(services.database, cache, services.clock, metrics=metrics)
    return follower, cache


def cached_key(cache: VerificationCache, customer_id: uuid.UUID | None = None) -> str:
    token_hash = tokens.hash_token(tokens.generate_token())
    key = VerifiedKey(uuid.uuid4(), customer_id or uuid.uuid4(), START + timedelta(days=30))
    cache.put_key(token_hash, key, cache.generation)
    return token_hash


async def write(
    services: Services,
    seq: int,
    token_hash: str,
    *,
    kind: str = "accesskey",
    subject_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> None:
    """A log entry with the number ``seq``, as a transaction that took it would commit it."""
    from keyplane.store.tables import revocations

    async with services.database.engine.begin() as conn:
        await conn.execute(
            insert(revocations).values(
                seq=seq,
                kind=kind,
                subject_id=subject_id or uuid.uuid4(),
                token_hash=token_hash,
                tm_create=at or services.clock.now(),
            )
        )


async def started_at_zero(services: Services) -> tuple[RevocationFollower, VerificationCache]:
    follower, cache = follower_for(services)
    assert await follower.poll() == 0  # an empty log: the low-water mark is 0
    return follower, cache


async def test_a_number_committed_late_is_applied_when_it_arrives(
    services: Services, monotonic: Ticker
) -> None:
    follower, cache = await started_at_zero(services)
    late, early, meanwhile = cached_key(cache), cached_key(cache), cached_key(cache)
    await write(services, 2, early)  # number 1 is taken but not committed yet
    assert await follower.poll() == 1
    assert cache.get_key(early) is MISS
    assert cache.get_key(late) is not MISS
    await write(services, 3, meanwhile)  # read again with 2, which is already applied
    assert await follower.poll() == 1
    assert cache.get_key(meanwhile) is MISS
    monotonic.now += 29.0
    await write(services, 1, late)
    assert await follower.poll() == 1
    assert cache.get_key(late) is MISS
    assert await follower.poll() == 0  # all three are behind the low-water mark now
    next_one = cached_key(cache)
    await write(services, 4, next_one)
    assert await follower.poll() == 1
    assert cache.get_key(next_one) is MISS


async def test_a_number_never_committed_is_waited_for_thirty_seconds_then_passed_over(
    services: Services, monotonic: Ticker
) -> None:
    follower, cache = await started_at_zero(services)
    after_the_gap, later = cached_key(cache), cached_key(cache)
    await write(services, 2, after_the_gap)  # number 1 was rolled back
    assert await follower.poll() == 1
    monotonic.now += 20.0
    assert await follower.poll() == 0  # still waiting; its wait started at the first poll
    monotonic.now += 10.0
    assert await follower.poll() == 0  # exactly GAP_PATIENCE_SECONDS: still waiting
    # Number 1 arriving now is still applied: the follower has not passed over it.
    waited_for = cached_key(cache)
    await write(services, 1, waited_for)
    assert await follower.poll() == 1
    assert cache.get_key(waited_for) is MISS
    await write(services, 4, later)  # number 3 is missing now
    assert await follower.poll() == 1
    monotonic.now += 30.5
    assert await follower.poll() == 0  # passed over 3, and 4 is behind the mark
    too_late = cached_key(cache)
    await write(services, 3, too_late)
    assert await follower.poll() == 0  # below the low-water mark: no longer looked for
    assert cache.get_key(too_late) is not MISS


async def test_entries_of_an_unknown_kind_are_passed_over(
    services: Services, monotonic: Ticker
) -> None:
    follower, cache = await started_at_zero(services)
    kept, revoked = cached_key(cache), cached_key(cache)
    await write(services, 1, kept, kind="webhook")
    assert await follower.poll() == 0
    assert cache.get_key(kept) is not MISS
    await write(services, 2, revoked)
    assert await follower.poll() == 1
    assert cache.get_key(revoked) is MISS


async def test_agent_and_customer_entries_evict_what_they_name(
    services: Services, monotonic: Ticker
) -> None:
    follower, cache = await started_at_zero(services)
    agent = VerifiedAgent(uuid.uuid4(), uuid.uuid4(), 0)
    cache.put_agent(agent.id, agent, cache.generation)
    customer_id, other_customer = uuid.uuid4(), uuid.uuid4()
    of_customer, of_other = cached_key(cache, customer_id), cached_key(cache, other_customer)
    await write(services, 1, "", kind="agent", subject_id=agent.id)
    await write(services, 2, "", kind="customer", subject_id=customer_id)
    assert await follower.poll() == 2
    assert cache.get_agent(agent.id) is MISS
    assert cache.get_key(of_customer) is MISS
    assert cache.get_key(of_other) is not MISS


async def test_session_entries_evict_the_ended_session_only(
    services: Services, monotonic: Ticker
) -> None:
    """A logout: the session cached as live is read again (and found ended)."""
    follower, cache = await started_at_zero(services)
    ended, other = uuid.uuid4(), uuid.uuid4()
    cache.put_session(ended, None, cache.generation)
    cache.put_session(other, None, cache.generation)
    kept = cached_key(cache)
    await write(services, 1, "", kind="session", subject_id=ended)
    assert await follower.poll() == 1
    assert cache.get_session(ended) is MISS
    assert cache.get_session(other) is None
    assert cache.get_key(kept) is not MISS


def lag_samples(metrics: Metrics) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name.startswith("keyplane_revocation_lag_seconds"):
                found[sample.name + str(sorted(sample.labels.items()))] = sample.value
    return found


async def test_a_revocation_stamped_ahead_of_this_clock_counts_as_no_lag(
    services: Services, monotonic: Ticker
) -> None:
    """Another replica's clock may be ahead: the lag is never negative."""
    metrics = Metrics()
    follower, cache = follower_for(services, metrics)
    assert await follower.poll() == 0
    await write(services, 1, cached_key(cache), at=services.clock.now() + timedelta(seconds=5))
    assert await follower.poll() == 1
    found = lag_samples(metrics)
    assert found["keyplane_revocation_lag_seconds_count[]"] == 1
    assert found["keyplane_revocation_lag_seconds_sum[]"] == 0.0
    assert found["keyplane_revocation_lag_seconds_bucket[('le', '0.01')]"] == 1


async def entries(services: Services) -> int:
    async with services.database.reader() as repos:
        return len(await repos.revocations.after(0))


async def test_the_log_is_pruned_at_start_then_once_an_hour(
    services: Services, clock: FrozenClock, monotonic: Ticker
) -> None:
    follower, _ = await started_at_zero(services)
    await write(services, 1, "a" * 64)
    clock.advance(86_400 + 1)
    await follower._prune()
    assert await entries(services) == 0  # the first prune is due at once
    await write(services, 2, "b" * 64)
    clock.advance(86_400 + 1)
    monotonic.now += 3_599.0
    await follower._prune()
    assert await entries(services) == 1  # not an hour since the last prune
    monotonic.now += 1.0
    await follower._prune()
    assert await entries(services) == 0
    await write(services, 3, "c" * 64)
    clock.advance(86_400 + 1)
    monotonic.now += 3_599.0
    await follower._prune()
    assert await entries(services) == 1  # the hour counts from the last prune


class Stepper:
    """Stands in for the loop's pause: the test lets each round go, and sees each one end."""

    def __init__(self, follower: RevocationFollower) -> None:
        self.intervals: list[float] = []
        self._ended: asyncio.Queue[None] = asyncio.Queue()
        self._go: asyncio.Queue[bool] = asyncio.Queue()
        follower._task.pause = self.pause  # type: ignore[method-assign]

    async def pause(self, seconds: float) -> bool:
        self.intervals.append(seconds)
        self._ended.put_nowait(None)
        return await self._go.get()

    async def round_ended(self) -> None:
        await asyncio.wait_for(self._ended.get(), 10)

    async def next_round(self) -> None:
        self._go.put_nowait(True)
        await self.round_ended()

    def finish(self) -> None:
        self._go.put_nowait(False)


@asynccontextmanager
async def running(follower: RevocationFollower) -> AsyncIterator[Stepper]:
    stepper = Stepper(follower)
    await follower.start()
    try:
        await stepper.round_ended()
        yield stepper
    finally:
        stepper.finish()
        await follower.stop()


async def test_the_loop_polls_four_times_a_second_and_applies_what_is_new(
    services: Services, monotonic: Ticker
) -> None:
    follower, cache = follower_for(services)
    async with running(follower) as loop:
        first = cached_key(cache)
        await write(services, 1, first)
        await loop.next_round()
        assert cache.get_key(first) is MISS
        second = cached_key(cache)
        await write(services, 2, second)
        await loop.next_round()
        assert cache.get_key(second) is MISS
    assert loop.intervals == [0.25, 0.25, 0.25]


class FlakyDatabase:
    """The real database, or ``Unavailable`` while ``down``."""

    def __init__(self, services: Services) -> None:
        self._real = services.database
        self.down = False

    def reader(self) -> Any:
        return self._or_down(self._real.reader)

    def transaction(self) -> Any:
        return self._or_down(self._real.transaction)

    @asynccontextmanager
    async def _or_down(self, open_: Any) -> AsyncIterator[Repositories]:
        if self.down:
            raise Unavailable("The database is not reachable.")
        async with open_() as repos:
            yield repos


@pytest.fixture
def log_lines() -> Iterator[Any]:
    with captured_logging("json") as buffer:

        def events() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
            return [line for line in lines if line.get("logger") == "keyplane.revocations"]

        yield events


async def test_an_unreachable_log_is_reported_once_and_its_recovery_once(
    services: Services, monotonic: Ticker, log_lines: Any
) -> None:
    database = FlakyDatabase(services)
    database.down = True
    cache = VerificationCache(ttl=60.0)
    follower = RevocationFollower(database, cache, services.clock)  # type: ignore[arg-type]
    async with running(follower) as loop:
        await loop.next_round()
        assert [(e["event"], e["level"], e["reason"]) for e in log_lines()] == [
            ("revocation_log_unreachable", "warning", "SERVICE_UNAVAILABLE")
        ]
        database.down = False
        await loop.next_round()
        await loop.next_round()
        revoked = cached_key(cache)
        await write(services, 1, revoked)
        await loop.next_round()
        assert cache.get_key(revoked) is MISS  # it went on following the log
    assert [(e["event"], e["level"]) for e in log_lines()] == [
        ("revocation_log_unreachable", "warning"),
        ("revocation_log_recovered", "info"),
    ]


async def test_a_replica_that_missed_the_message_refuses_a_deleted_key_after_one_round(
    services: Services, settings: Settings, clock: FrozenClock, monotonic: Ticker
) -> None:
    """Two app instances on one database, no Redis: only the log carries the deletion."""
    other = build_services(settings, clock=clock)
    try:
        factory = Factory(services)
        customer = await factory.customer()
        key, token = await factory.accesskey(customer)
        credential = Credential("accesskey", token, "header")
        identity, _ = await other.auth.authenticate(credential, client="127.0.0.1")
        assert identity.customer_id == customer.id  # now cached by the other replica
        async with running(other.revocations) as loop:
            await services.accesskeys.delete(OPERATOR, key.id)
            assert other.auth.already_verified(credential) is not None  # not heard yet
            await loop.next_round()
            assert other.auth.already_verified(credential) is None
    finally:
        await other.close()
