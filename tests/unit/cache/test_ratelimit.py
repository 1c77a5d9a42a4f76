"""GCRA: the pure step and the in-memory limiter."""

from __future__ import annotations

import pytest

from keyplane.cache import ratelimit
from keyplane.cache.ratelimit import MemoryLimiter, Policy, _decide
from tests.ticker import Ticker, tick

TEN_PER_SECOND = Policy("test", rate=10, period=1.0, burst=5)  # interval 0.1 s


@pytest.fixture
def ticker(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    """Replaces the clock of ``keyplane.cache.ratelimit`` only (not the event loop's)."""
    return tick(monkeypatch, ratelimit, now=5_000.0)


def test_policy_interval() -> None:
    assert TEN_PER_SECOND.interval == pytest.approx(0.1)
    assert Policy("m", rate=30, period=60.0, burst=30).interval == pytest.approx(2.0)


def test_decide_allows_the_burst_then_denies() -> None:
    now = 100.0
    tat = now
    remaining = []
    for _ in range(TEN_PER_SECOND.burst):
        decision, new_tat = _decide(TEN_PER_SECOND, tat, now, 1)
        assert decision.allowed
        assert decision.limit == 5
        assert decision.retry_after == 0.0
        assert new_tat is not None
        remaining.append(decision.remaining)
        tat = new_tat
    assert remaining == [4, 3, 2, 1, 0]

    denied, new_tat = _decide(TEN_PER_SECOND, tat, now, 1)
    assert not denied.allowed
    assert new_tat is None  # a refusal stores nothing
    assert denied.remaining == 0
    assert denied.limit == 5
    assert denied.retry_after == pytest.approx(TEN_PER_SECOND.interval)
    assert denied.reset_after == pytest.approx(TEN_PER_SECOND.burst * TEN_PER_SECOND.interval)


def test_decide_allows_again_after_retry_after() -> None:
    now = 100.0
    tat = now
    for _ in range(TEN_PER_SECOND.burst):
        _, stored = _decide(TEN_PER_SECOND, tat, now, 1)
        assert stored is not None
        tat = stored
    denied, _ = _decide(TEN_PER_SECOND, tat, now, 1)
    later = now + denied.retry_after
    decision, _ = _decide(TEN_PER_SECOND, tat, later, 1)
    assert decision.allowed
    assert decision.remaining == 0
    just_before, _ = _decide(TEN_PER_SECOND, tat, later - 0.01, 1)
    assert not just_before.allowed


def test_decide_reset_after_is_the_time_to_a_full_bucket() -> None:
    decision, new_tat = _decide(TEN_PER_SECOND, 0.0, 100.0, 1)
    assert decision.allowed
    assert decision.reset_after == pytest.approx(0.1)
    assert new_tat == pytest.approx(100.1)


def test_decide_an_old_tat_counts_as_a_full_bucket() -> None:
    decision, _ = _decide(TEN_PER_SECOND, 3.0, 100.0, 1)
    assert decision.allowed
    assert decision.remaining == TEN_PER_SECOND.burst - 1


def test_decide_with_a_cost() -> None:
    decision, new_tat = _decide(TEN_PER_SECOND, 100.0, 100.0, 3)
    assert decision.allowed
    assert decision.remaining == 2
    assert new_tat == pytest.approx(100.3)
    too_much, _ = _decide(TEN_PER_SECOND, 100.0, 100.0, 6)
    assert not too_much.allowed


async def test_memory_limiter_burst_then_denied(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    policy = Policy("burst", rate=1, period=1.0, burst=3)
    decisions = [await limiter.hit(policy, "k") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert [d.limit for d in decisions] == [3, 3, 3]

    denied = await limiter.hit(policy, "k")
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.retry_after == pytest.approx(1.0)
    # Refusals don't consume: the wait stays one interval.
    again = await limiter.hit(policy, "k")
    assert again.retry_after == pytest.approx(1.0)


async def test_memory_limiter_refills_over_time(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    policy = Policy("refill", rate=1, period=1.0, burst=3)
    for _ in range(3):
        assert (await limiter.hit(policy, "k")).allowed

    ticker.advance(0.5)
    half = await limiter.hit(policy, "k")
    assert not half.allowed
    assert half.retry_after == pytest.approx(0.5)

    ticker.advance(0.5)
    one = await limiter.hit(policy, "k")
    assert one.allowed
    assert one.remaining == 0
    assert not (await limiter.hit(policy, "k")).allowed

    ticker.advance(10)  # long enough to fill the bucket, not beyond it
    decisions = [await limiter.hit(policy, "k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].remaining == 2


async def test_memory_limiter_peek_does_not_consume(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    policy = Policy("peek", rate=1, period=1.0, burst=2)
    for _ in range(5):
        peeked = await limiter.peek(policy, "k")
        assert peeked.allowed
        assert peeked.remaining == 1
    assert (await limiter.hit(policy, "k")).remaining == 1
    assert (await limiter.peek(policy, "k")).remaining == 0
    assert (await limiter.hit(policy, "k")).remaining == 0
    exhausted = await limiter.peek(policy, "k")
    assert not exhausted.allowed
    assert exhausted.retry_after == pytest.approx(1.0)


async def test_memory_limiter_keys_and_policies_are_separate(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    one = Policy("one", rate=1, period=60.0, burst=1)
    other = Policy("other", rate=1, period=60.0, burst=1)
    assert (await limiter.hit(one, "a")).allowed
    assert not (await limiter.hit(one, "a")).allowed
    assert (await limiter.hit(one, "b")).allowed
    assert (await limiter.hit(other, "a")).allowed


async def test_memory_limiter_close() -> None:
    await MemoryLimiter().close()
