"""Slots of a failure budget: pending ones are waited for, refusals are remembered.

Two ``RateLimits`` over one limiter stand for two replicas sharing Redis. The
policies refill one attempt a minute, so only the test's clock refills them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from keyplane.cache import ratelimit as limiter_module
from keyplane.cache.ratelimit import Decision, MemoryLimiter, Policy
from keyplane.errors import InvalidCredentials, LoginRefused, ResourceExhausted
from keyplane.metrics import Metrics
from keyplane.services import ratelimits as ratelimits_module
from keyplane.services.ratelimits import RateLimits
from tests.ticker import Ticker, tick

ADDRESS = "192.0.2.7"
LOGIN_FAILURES = Policy("loginfail", rate=1, period=60, burst=2)


class CountingLimiter(MemoryLimiter):
    """The shared limiter (Redis in production), noting every key it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        self.asked.append(f"{policy.name}:{key}")
        return await super().hit(policy, key, cost=cost)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    return tick(monkeypatch, limiter_module, ratelimits_module, now=50_000.0)


@pytest.fixture
async def held() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def replica(limiter: MemoryLimiter, *, auth_burst: int = 10) -> RateLimits:
    return RateLimits(
        limiter,
        customer=Policy("customer", rate=1, period=60, burst=2),
        auth_failures=Policy("authfail", rate=1, period=60, burst=auth_burst),
        login_failures=LOGIN_FAILURES,
        metrics=Metrics(),
    )


async def refused_login(limits: RateLimits, username: str) -> None:
    with pytest.raises(LoginRefused):
        async with limits.login_attempt(username, ADDRESS):
            raise LoginRefused()


async def exhausted(attempt: Callable[[], Awaitable[None]]) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as caught:
        await attempt()
    return caught.value


async def test_a_blocked_username_stays_refused_here_until_the_block_ends(
    clock: Ticker, held: list[asyncio.Task[None]]
) -> None:
    """The refusal is remembered until its retry time, even if the budget gets a slot back.

    Meanwhile this replica refuses before asking the shared limiter at all.
    """
    shared = CountingLimiter()
    here, there = replica(shared), replica(shared)
    checking, verdict = asyncio.Event(), asyncio.Event()

    async def good_login_there() -> None:
        async with there.login_attempt("alice", ADDRESS):
            checking.set()
            await verdict.wait()

    login = asyncio.create_task(good_login_there())
    held.append(login)
    await checking.wait()  # one of alice's two slots from this address, pending there
    await refused_login(here, "alice")  # the other one
    first = await exhausted(lambda: refused_login(here, "alice"))
    assert first.retry_after == 60  # blocked here for a minute

    verdict.set()
    await login  # the password was right: its slot goes back to the shared budget
    assert (await shared.peek(LOGIN_FAILURES, f"alice|{ADDRESS}")).allowed

    clock.now += 30
    asked = len(shared.asked)
    error = await exhausted(lambda: refused_login(here, "alice"))
    assert (error.reason, error.retry_after, error.limit) == ("RATE_LIMIT_EXCEEDED", 30, 2)
    assert shared.asked[asked:] == []  # neither of its slots is asked for

    clock.now += 30  # the block's end
    async with here.login_attempt("alice", ADDRESS):
        pass


async def test_a_waiting_attempt_waits_for_every_pending_slot_of_its_address(
    clock: Ticker, held: list[asyncio.Task[None]]
) -> None:
    """Two slots pending, a third attempt waits: the first refused, it waits for the second.

    The second credential is good, its slot comes back, and the third is looked at:
    an address is not refused while a slot of its own may still come back.
    """
    limits = replica(CountingLimiter(), auth_burst=2)
    verdicts: list[asyncio.Event] = []

    async def pending(good: bool) -> None:
        inside, verdict = asyncio.Event(), asyncio.Event()
        verdicts.append(verdict)

        async def attempt() -> None:
            async with limits.auth_attempt(ADDRESS):
                inside.set()
                await verdict.wait()
                if not good:
                    raise InvalidCredentials()

        held.append(asyncio.create_task(attempt()))
        await inside.wait()

    await pending(good=False)
    await pending(good=True)
    refused, good = held
    looked_at = asyncio.Event()

    async def third() -> None:
        async with limits.auth_attempt(ADDRESS):
            looked_at.set()

    waiting = asyncio.create_task(third())
    held.append(waiting)
    verdicts[0].set()
    with pytest.raises(InvalidCredentials):
        await refused
    verdicts[1].set()
    await good
    await waiting  # admitted, not refused with 429
    assert looked_at.is_set()
