"""BatchingLimiter: a customer's shared budget taken in batches, spent locally."""

from __future__ import annotations

from keyplane.cache.ratelimit import BatchingLimiter, Decision, MemoryLimiter, Policy
from tests.ticker import Ticker

CUSTOMER = Policy("customer", 100.0, 1.0, 40)
OTHER = Policy("authfail", 100.0, 1.0, 40)


class CountingLimiter(MemoryLimiter):
    """The shared limiter (Redis in production), counting round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        self.calls.append((policy.name, cost))
        return await super().hit(policy, key, cost=cost)


async def test_a_batch_is_one_round_trip() -> None:
    shared = CountingLimiter()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    decisions = [await limiter.hit(CUSTOMER, "c") for _ in range(25)]
    assert all(decision.allowed for decision in decisions)
    assert shared.calls == [("customer", 10)] * 3
    # Remaining counts what is left in the shared budget and in the local reserve.
    assert decisions[0].remaining == 40 - 10 + 9
    assert decisions[1].remaining == 40 - 10 + 8


async def test_other_policies_pass_straight_through() -> None:
    shared = CountingLimiter()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    for _ in range(3):
        await limiter.hit(OTHER, "ip:x")
    assert shared.calls == [("authfail", 1)] * 3


async def test_never_more_than_the_shared_budget_at_once_across_replicas() -> None:
    """Every admitted request was reserved in the shared limiter: no overshoot at an instant."""
    shared = MemoryLimiter()  # on the real clock: a policy that refills nothing meanwhile
    still = Policy("customer", 1.0, 3600.0, 40)
    replicas = [
        BatchingLimiter(shared, {"customer"}, batch=7, monotonic=Ticker()) for _ in range(3)
    ]
    admitted = 0
    for _ in range(40):
        for replica in replicas:
            admitted += (await replica.hit(still, "c")).allowed
    assert admitted <= still.burst
    # Near the end, requests went one at a time: nearly all of the burst was used.
    assert admitted >= still.burst - 3 * 7


async def test_unspent_reserves_lapse_after_the_hold() -> None:
    shared = CountingLimiter()
    clock = Ticker()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, hold=1.0, monotonic=clock)
    await limiter.hit(CUSTOMER, "c")
    clock.now += 1.5
    await limiter.hit(CUSTOMER, "c")
    assert shared.calls == [("customer", 10), ("customer", 10)]


async def test_when_a_batch_is_refused_requests_go_one_at_a_time() -> None:
    shared = CountingLimiter()
    limiter = BatchingLimiter(shared, {"customer"}, batch=30, monotonic=Ticker())
    tight = Policy("customer", 1.0, 60.0, 35)  # no refill during the test
    results = [(await limiter.hit(tight, "c")).allowed for _ in range(40)]
    assert results.count(True) == 35
    assert results[-1] is False
    assert ("customer", 1) in shared.calls


async def test_a_batch_of_one_is_exactly_one_request_at_a_time() -> None:
    """A small burst makes the batch one (5% of it, at least one): one round trip each.

    A refused request too is one round trip, as without batching, not a refused
    batch followed by a request of its own.
    """
    shared = CountingLimiter()
    limiter = BatchingLimiter(shared, {"customer"}, batch=1, monotonic=Ticker())
    tight = Policy("customer", 1.0, 60.0, 2)  # no refill during the test
    results = [(await limiter.hit(tight, "c")).allowed for _ in range(4)]
    assert results == [True, True, False, False]
    assert shared.calls == [("customer", 1)] * 4
