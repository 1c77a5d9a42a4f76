"""BatchingLimiter under concurrency: one batch in flight per key at a time.

Requests arriving while a batch is being reserved wait for it; before, each
reserved a batch of its own, and all but the last lapsed unspent, taking up
to concurrency times batch of the shared budget for one batch's worth of
requests (and a round trip each).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from keyplane.cache.ratelimit import BatchingLimiter, Decision, MemoryLimiter, Policy
from tests.ticker import Ticker

CUSTOMER = Policy("customer", 100.0, 1.0, 1_000)


class SlowShared(MemoryLimiter):
    """A shared limiter whose round trip lets other tasks run (as Redis's does)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        self.calls.append(cost)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        return await super().hit(policy, key, cost=cost)


async def test_concurrent_requests_share_one_batch_round_trip() -> None:
    shared = SlowShared()
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    decisions: list[Decision] = []

    async def request() -> None:
        decisions.append(await limiter.hit(CUSTOMER, "c"))

    async with anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(request)
    assert len(decisions) == 25
    assert all(decision.allowed for decision in decisions)
    assert shared.calls == [10, 10, 10]
    # The shared budget paid for three batches, not one per request.
    left = await shared.peek(CUSTOMER, "c")
    assert left.remaining == 1_000 - 30 - 1  # peek asks for one itself


async def test_waiters_of_a_refused_batch_go_one_at_a_time() -> None:
    shared = SlowShared()
    small = Policy("customer", 0.001, 1.0, 12)
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    await shared.hit(small, "c", cost=5)  # 7 left: a batch of 10 is refused
    shared.calls.clear()
    decisions: list[Decision] = []

    async def request() -> None:
        decisions.append(await limiter.hit(small, "c"))

    async with anyio.create_task_group() as tg:
        for _ in range(9):
            tg.start_soon(request)
    assert [d.allowed for d in decisions].count(True) == 7
    assert shared.calls[0] == 10
    assert shared.calls[1:] == [1] * 9


async def test_waiters_of_a_refused_batch_go_one_at_a_time_after_a_spent_reserve() -> None:
    """A key whose last batch was spent: a refused refill sends its waiters one at a time.

    Each waiter asks for one request, as without batching; none tries a batch of its
    own first (a round trip that would be refused again, taken one waiter after another).
    """
    shared = SlowShared()
    small = Policy("customer", 0.001, 1.0, 12)
    limiter = BatchingLimiter(shared, {"customer"}, batch=10, monotonic=Ticker())
    for _ in range(10):  # one batch of 10, spent: 2 left in the shared budget
        assert (await limiter.hit(small, "c")).allowed
    assert shared.calls == [10]
    shared.calls.clear()
    decisions: list[Decision] = []

    async def request() -> None:
        decisions.append(await limiter.hit(small, "c"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(request)
    assert [d.allowed for d in decisions].count(True) == 2
    assert shared.calls == [10, 1, 1, 1, 1, 1]
