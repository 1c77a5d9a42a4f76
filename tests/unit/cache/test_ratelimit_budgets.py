"""Exact budgets, reset times and edges of the in-memory and batching limiters.

The clock is injected (``ratelimit.time`` replaced, or ``monotonic=``), so every
number below is exact: no test depends on how fast the machine is.
"""

from __future__ import annotations

import pytest

from keyplane.cache import ratelimit
from keyplane.cache.ratelimit import BatchingLimiter, Decision, MemoryLimiter, Policy, _decide
from tests.ticker import Ticker, tick

ONE_PER_SECOND = Policy("second", rate=1, period=1.0, burst=3)
THIRTY_PER_MINUTE = Policy("minute", rate=30, period=60.0, burst=30)  # interval 2 s


@pytest.fixture
def ticker(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    return tick(monkeypatch, ratelimit, now=5_000.0)


async def spend(limiter: MemoryLimiter, policy: Policy, key: str, count: int) -> list[Decision]:
    return [await limiter.hit(policy, key) for _ in range(count)]


# The pure step ------------------------------------------------------------------


def test_the_interval_is_the_period_over_the_rate() -> None:
    assert THIRTY_PER_MINUTE.interval == 2.0
    assert Policy("p", rate=4, period=1.0, burst=1).interval == 0.25


def test_a_full_bucket_resets_after_one_interval_per_request_taken() -> None:
    now = 1_000.0
    decision, tat = _decide(THIRTY_PER_MINUTE, now, now, 1)
    assert decision == Decision(True, 30, 29, 2.0, 0.0)
    assert tat == now + 2.0
    decision, tat = _decide(THIRTY_PER_MINUTE, now, now, 30)  # the whole burst at once
    assert decision == Decision(True, 30, 0, 60.0, 0.0)
    assert tat == now + 60.0


def test_a_refusal_says_when_the_bucket_is_full_and_when_one_more_passes() -> None:
    now = 1_000.0
    tat = now + 60.0  # the whole burst spent just now
    decision, stored = _decide(THIRTY_PER_MINUTE, tat, now, 1)
    assert stored is None
    assert decision == Decision(False, 30, 0, 60.0, 2.0)
    decision, _ = _decide(THIRTY_PER_MINUTE, tat, now, 3)
    assert decision == Decision(False, 30, 0, 60.0, 6.0)


def test_the_window_edge_is_exact() -> None:
    now = 1_000.0
    tat = now + 60.0
    refused, _ = _decide(THIRTY_PER_MINUTE, tat, now + 1.999, 1)
    assert not refused.allowed
    admitted, stored = _decide(THIRTY_PER_MINUTE, tat, now + 2.0, 1)
    assert admitted == Decision(True, 30, 0, 60.0, 0.0)
    assert stored == now + 62.0


def test_remaining_counts_whole_requests_only() -> None:
    now = 1_000.0
    # Half an interval back from a full bucket: still 29 whole requests after this one.
    decision, _ = _decide(THIRTY_PER_MINUTE, now + 1.0, now, 1)
    assert decision.remaining == 28
    decision, _ = _decide(THIRTY_PER_MINUTE, now + 0.999, now, 1)
    assert decision.remaining == 28
    decision, _ = _decide(THIRTY_PER_MINUTE, now + 2.0, now, 1)
    assert decision.remaining == 28
    decision, _ = _decide(THIRTY_PER_MINUTE, now + 2.001, now, 1)
    assert decision.remaining == 27


# MemoryLimiter --------------------------------------------------------------------


async def test_memory_limiter_reset_and_retry_times_are_exact(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    decisions = await spend(limiter, ONE_PER_SECOND, "k", 4)
    assert decisions == [
        Decision(True, 3, 2, 1.0, 0.0),
        Decision(True, 3, 1, 2.0, 0.0),
        Decision(True, 3, 0, 3.0, 0.0),
        Decision(False, 3, 0, 3.0, 1.0),
    ]
    ticker.now += 0.25
    assert await limiter.hit(ONE_PER_SECOND, "k") == Decision(False, 3, 0, 2.75, 0.75)
    ticker.now += 0.75
    assert await limiter.hit(ONE_PER_SECOND, "k") == Decision(True, 3, 0, 3.0, 0.0)


async def test_memory_limiter_refund_gives_back_one_request(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    await spend(limiter, ONE_PER_SECOND, "k", 3)
    await limiter.refund(ONE_PER_SECOND, "k")
    assert await limiter.peek(ONE_PER_SECOND, "k") == Decision(True, 3, 0, 3.0, 0.0)
    assert (await limiter.hit(ONE_PER_SECOND, "k")).allowed
    assert not (await limiter.hit(ONE_PER_SECOND, "k")).allowed


async def test_memory_limiter_refund_never_fills_beyond_the_bucket(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    await limiter.hit(ONE_PER_SECOND, "k")
    for _ in range(5):
        await limiter.refund(ONE_PER_SECOND, "k")
    decisions = await spend(limiter, ONE_PER_SECOND, "k", 4)
    assert [d.allowed for d in decisions] == [True, True, True, False]


async def test_memory_limiter_refund_of_an_unknown_key_does_nothing(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    await limiter.refund(ONE_PER_SECOND, "never-seen")
    assert await limiter.peek(ONE_PER_SECOND, "never-seen") == Decision(True, 3, 2, 1.0, 0.0)


async def test_memory_limiter_give_back_of_a_cost(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    await spend(limiter, ONE_PER_SECOND, "k", 3)
    limiter.give_back(ONE_PER_SECOND, "k", 2)
    assert await limiter.peek(ONE_PER_SECOND, "k") == Decision(True, 3, 1, 2.0, 0.0)
    # Other policies and keys are untouched.
    limiter.give_back(THIRTY_PER_MINUTE, "k", 2)
    limiter.give_back(ONE_PER_SECOND, "other", 2)
    assert await limiter.peek(ONE_PER_SECOND, "k") == Decision(True, 3, 1, 2.0, 0.0)


async def test_memory_limiter_hit_with_a_cost(ticker: Ticker) -> None:
    limiter = MemoryLimiter()
    assert await limiter.hit(ONE_PER_SECOND, "k", cost=2) == Decision(True, 3, 1, 2.0, 0.0)
    assert await limiter.hit(ONE_PER_SECOND, "k", cost=2) == Decision(False, 3, 0, 2.0, 1.0)
    assert await limiter.hit(ONE_PER_SECOND, "k") == Decision(True, 3, 0, 3.0, 0.0)


async def test_memory_limiter_forgets_the_least_recently_used_key_first(ticker: Ticker) -> None:
    policy = Policy("one", rate=1, period=60.0, burst=1)
    limiter = MemoryLimiter(max_keys=2)
    for key in ("a", "b"):
        assert (await limiter.hit(policy, key)).allowed
    assert not (await limiter.hit(policy, "a")).allowed  # refused: "a" stays oldest
    assert (await limiter.hit(policy, "c")).allowed  # one key too many: "a" goes
    assert not (await limiter.hit(policy, "b")).allowed
    assert not (await limiter.hit(policy, "c")).allowed
    assert (await limiter.hit(policy, "a")).allowed  # forgotten, so a fresh budget
    assert (await limiter.hit(policy, "b")).allowed  # "b" was the oldest then


async def test_memory_limiter_a_peek_stores_nothing(ticker: Ticker) -> None:
    policy = Policy("one", rate=1, period=60.0, burst=1)
    limiter = MemoryLimiter(max_keys=1)
    assert (await limiter.hit(policy, "a")).allowed
    await limiter.peek(policy, "b")  # would evict "a" if it stored anything
    assert not (await limiter.hit(policy, "a")).allowed


# BatchingLimiter -------------------------------------------------------------------


class Recording(MemoryLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.costs: list[int] = []

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        self.costs.append(cost)
        return await super().hit(policy, key, cost=cost)


CUSTOMER = Policy("customer", rate=64.0, period=1.0, burst=40)  # exact in binary


async def test_a_reserve_lapses_exactly_at_the_hold(ticker: Ticker) -> None:
    clock = Ticker()
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, hold=2.0, monotonic=clock)
    await limiter.hit(CUSTOMER, "c")
    clock.now += 1.999
    await limiter.hit(CUSTOMER, "c")
    assert shared.costs == [10]
    clock.now += 0.001
    await limiter.hit(CUSTOMER, "c")
    assert shared.costs == [10, 10]


async def test_the_batch_is_never_larger_than_the_burst(ticker: Ticker) -> None:
    shared = Recording()
    small = Policy("customer", rate=100.0, period=1.0, burst=4)
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    decisions = [await limiter.hit(small, "c") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, True, False]
    assert [d.remaining for d in decisions[:4]] == [3, 2, 1, 0]
    assert shared.costs == [4, 4, 1]  # the whole burst, then one at a time


async def test_a_batch_of_one_is_no_batching(ticker: Ticker) -> None:
    shared = Recording()
    for batch in (1, 0, -5):
        limiter = BatchingLimiter(shared, {"customer"}, batch=batch, monotonic=Ticker())
        await limiter.hit(CUSTOMER, f"c{batch}")
    assert shared.costs == [1, 1, 1]


async def test_a_batch_of_two_is_batching(ticker: Ticker) -> None:
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=2, monotonic=Ticker())
    decisions = [await limiter.hit(CUSTOMER, "c") for _ in range(3)]
    assert shared.costs == [2, 2]
    assert [d.remaining for d in decisions] == [39, 38, 37]


async def test_a_cost_other_than_one_passes_through(ticker: Ticker) -> None:
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    decision = await limiter.hit(CUSTOMER, "c", cost=3)
    assert shared.costs == [3]
    assert decision.remaining == 37


async def test_when_a_batch_is_refused_requests_go_one_at_a_time(ticker: Ticker) -> None:
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    for _ in range(35):  # 35 of 40 spent, so no batch of 10 fits
        await shared.hit(CUSTOMER, "c")
    shared.costs.clear()
    decisions = [await limiter.hit(CUSTOMER, "c") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert shared.costs == [10, 1] * 6
    assert decisions[0].remaining == 4


async def test_the_oldest_reserves_are_forgotten_first(ticker: Ticker) -> None:
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, max_keys=2, monotonic=Ticker())
    for key in ("a", "b", "c"):  # one reserve too many: "a"'s goes
        await limiter.hit(CUSTOMER, key)
    assert shared.costs == [10, 10, 10]
    await limiter.hit(CUSTOMER, "b")  # still reserved
    await limiter.hit(CUSTOMER, "c")
    assert shared.costs == [10, 10, 10]
    await limiter.hit(CUSTOMER, "a")  # forgotten: a new batch
    assert shared.costs == [10, 10, 10, 10]


async def test_peek_refund_and_close_pass_through(ticker: Ticker) -> None:
    shared = MemoryLimiter()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    policy = Policy("customer", rate=1, period=1.0, burst=3)
    await shared.hit(policy, "c", cost=3)
    assert not (await limiter.peek(policy, "c")).allowed
    await limiter.refund(policy, "c")
    assert await limiter.peek(policy, "c") == Decision(True, 3, 0, 3.0, 0.0)
    await limiter.close()


async def test_by_default_a_reserve_is_held_one_second(ticker: Ticker) -> None:
    """docs/security.md: a worker spends its batch up to a second after it took it."""
    clock = Ticker()
    shared = Recording()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=clock)
    await limiter.hit(CUSTOMER, "c")
    clock.now += 0.999
    await limiter.hit(CUSTOMER, "c")
    assert shared.costs == [10]
    clock.now += 0.001
    await limiter.hit(CUSTOMER, "c")
    assert shared.costs == [10, 10]


async def test_the_answers_of_a_batch_are_those_of_the_shared_limiter(ticker: Ticker) -> None:
    limiter = BatchingLimiter(MemoryLimiter(), {"customer"}, batch=10, monotonic=Ticker())
    first = await limiter.hit(CUSTOMER, "c")  # reserves 10: 30 left in the shared budget
    assert first == Decision(True, 40, 39, 10 * CUSTOMER.interval, 0.0)
    second = await limiter.hit(CUSTOMER, "c")  # from the reserve: the same shared answer
    assert second == Decision(True, 40, 38, 10 * CUSTOMER.interval, 0.0)
