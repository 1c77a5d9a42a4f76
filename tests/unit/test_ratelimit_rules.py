"""The rate limit rules of ``services/ratelimits.py`` on the in-memory limiter, with a moved clock.

Policies here refill one attempt a minute, so only the test's clock refills them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keyplane.cache import ratelimit as limiter_module
from keyplane.cache.ratelimit import MemoryLimiter, Policy
from keyplane.errors import InvalidCredentials, LoginRefused, ResourceExhausted, Unavailable
from keyplane.metrics import Metrics
from keyplane.services import ratelimits as ratelimits_module
from keyplane.services.ratelimits import RateLimits
from tests.ticker import Ticker, tick

ADDRESS = "192.0.2.7"
OTHER = "192.0.2.8"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    return tick(monkeypatch, limiter_module, ratelimits_module, now=50_000.0)


def rules(*, auth_burst: int = 3, login_burst: int = 3) -> RateLimits:
    return RateLimits(
        MemoryLimiter(),
        customer=Policy("customer", rate=1, period=60, burst=2),
        auth_failures=Policy("authfail", rate=1, period=60, burst=auth_burst),
        login_failures=Policy("loginfail", rate=1, period=60, burst=login_burst),
        metrics=Metrics(),
    )


def refusals(limits: RateLimits) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(limits.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == "keyplane_ratelimit_refusals_total":
                found[sample.labels["policy"]] = sample.value
    return found


async def refused_credential(limits: RateLimits, client: str = ADDRESS) -> None:
    with pytest.raises(InvalidCredentials):
        async with limits.auth_attempt(client):
            raise InvalidCredentials()


async def refused_login(limits: RateLimits, username: str, client: str = ADDRESS) -> None:
    with pytest.raises(LoginRefused):
        async with limits.login_attempt(username, client):
            raise LoginRefused()


async def exhausted(attempt: Callable[[], Awaitable[None]]) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as caught:
        await attempt()
    return caught.value


def blocked(limits: RateLimits, client: str) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as caught:
        limits.ensure_auth_allowed(client)
    return caught.value


async def test_the_customer_budget_refuses_with_when_to_retry(clock: Ticker) -> None:
    limits = rules()
    customer = uuid.uuid4()
    first = await limits.consume_customer(customer)
    assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
    await limits.consume_customer(customer)
    error = await exhausted(lambda: limits.consume_customer(customer))
    assert (error.reason, error.retry_after, error.limit, error.reset_after) == (
        "RATE_LIMIT_EXCEEDED",
        60,
        2,
        120.0,
    )
    assert error.message == (
        "This customer is sending too many requests; retry after the time in Retry-After."
    )
    await limits.consume_customer(uuid.uuid4())  # another customer's budget is its own
    clock.now += 59.5
    error = await exhausted(lambda: limits.consume_customer(customer))
    assert error.retry_after == 1  # half a second, rounded up
    clock.now += 0.5
    assert (await limits.consume_customer(customer)).allowed
    assert refusals(limits) == {"customer": 2, "authfail": 0, "loginfail": 0}


async def test_refused_credentials_spend_the_budget_then_the_address_is_blocked(
    clock: Ticker,
) -> None:
    limits = rules()
    for _ in range(3):
        limits.ensure_auth_allowed(ADDRESS)
        await refused_credential(limits)
    error = await exhausted(lambda: refused_credential(limits))
    assert (error.reason, error.retry_after, error.limit, error.reset_after) == (
        "RATE_LIMIT_EXCEEDED",
        60,
        3,
        60.0,
    )
    assert error.message == (
        "Too many failed attempts from this address; retry after the time in Retry-After."
    )
    clock.now += 20.25
    error = blocked(limits, ADDRESS)
    assert (error.retry_after, error.reset_after) == (40, 39.75)  # remembered in this replica
    limits.ensure_auth_allowed(OTHER)
    await refused_credential(limits, OTHER)  # another address has its own budget
    clock.now += 39.75
    limits.ensure_auth_allowed(ADDRESS)  # the block is over exactly at its end
    await refused_credential(limits)  # and one more attempt has refilled
    await exhausted(lambda: refused_credential(limits))
    assert refusals(limits) == {"customer": 0, "authfail": 3, "loginfail": 0}


async def test_good_credentials_and_no_verdict_give_the_slot_back(clock: Ticker) -> None:
    limits = rules(auth_burst=1)
    for _ in range(5):
        async with limits.auth_attempt(ADDRESS):
            pass
        with pytest.raises(Unavailable):
            async with limits.auth_attempt(ADDRESS):
                raise Unavailable()
    await refused_credential(limits)  # the one slot was still there
    await exhausted(lambda: refused_credential(limits))


async def test_a_cancelled_attempt_gives_its_slot_back(clock: Ticker) -> None:
    limits = rules(auth_burst=1)
    inside = asyncio.Event()

    async def hangs() -> None:
        async with limits.auth_attempt(ADDRESS):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hangs())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await refused_credential(limits)


async def test_failed_logins_block_the_username_from_that_address_only(clock: Ticker) -> None:
    limits = rules(auth_burst=4, login_burst=3)
    for _ in range(3):
        await refused_login(limits, "alice")
    for _ in range(3):
        error = await exhausted(lambda: refused_login(limits, "alice"))
        assert (error.retry_after, error.limit) == (60, 3)
        # The address's slot taken for a refused attempt is given back.
    await refused_login(limits, "bob")  # the address's fourth slot
    await exhausted(lambda: refused_login(limits, "carol"))  # the address is out of budget
    await refused_login(limits, "alice", OTHER)
    assert refusals(limits) == {"customer": 0, "authfail": 1, "loginfail": 3}


async def test_a_good_login_gives_both_slots_back(clock: Ticker) -> None:
    limits = rules(auth_burst=1, login_burst=1)
    for _ in range(3):
        async with limits.login_attempt("alice", ADDRESS):
            pass
    await refused_login(limits, "alice")
    await exhausted(lambda: refused_login(limits, "alice"))


@pytest.fixture
async def held() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_parallel_attempts_wait_for_a_pending_slot_instead_of_being_refused(
    clock: Ticker, held: list[asyncio.Task[None]]
) -> None:
    limits = rules(auth_burst=1)
    inside, verdict = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with limits.auth_attempt(ADDRESS):
            inside.set()
            await verdict.wait()

    held.append(asyncio.create_task(first()))
    await inside.wait()
    second_in = asyncio.Event()

    async def second() -> None:
        async with limits.auth_attempt(ADDRESS):
            second_in.set()

    waiting = asyncio.create_task(second())
    held.append(waiting)
    await asyncio.sleep(0)  # one turn of the loop: it reaches its wait
    assert not waiting.done()  # neither refused nor admitted while the first is pending
    verdict.set()  # the first credential was good: its slot comes back
    await waiting
    assert second_in.is_set()


async def test_a_waiting_attempt_is_refused_when_the_pending_one_was_refused(
    clock: Ticker, held: list[asyncio.Task[None]]
) -> None:
    limits = rules(auth_burst=1)
    inside, verdict = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with limits.auth_attempt(ADDRESS):
            inside.set()
            await verdict.wait()
            raise InvalidCredentials()

    refused = asyncio.create_task(first())
    held.append(refused)
    await inside.wait()
    waiting = asyncio.create_task(refused_credential(limits))
    held.append(waiting)
    await asyncio.sleep(0)
    assert not waiting.done()
    verdict.set()
    with pytest.raises(ResourceExhausted):
        await waiting
    with pytest.raises(InvalidCredentials):
        await refused


async def test_the_memory_of_blocked_addresses_is_bounded_oldest_first(
    clock: Ticker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimits_module, "MAX_BLOCKED", 2)
    limits = rules(auth_burst=1)
    addresses = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    for address in addresses:
        await refused_credential(limits, address)
        await exhausted(lambda address=address: refused_credential(limits, address))
    limits.ensure_auth_allowed(addresses[0])  # forgotten: the limiter alone refuses it now
    for address in addresses[1:]:
        blocked(limits, address)
