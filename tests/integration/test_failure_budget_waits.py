"""Honest parallelism waits for the failure budget instead of being refused or queued behind
others, and the budget still stops guessing.

- Logins of one user beyond the username's budget wait for the pending ones
  (a right password gives its slot back) instead of blocking the username.
- Logins waiting for their username's slot hold no slot of the address, so the
  address's access keys are not made to wait behind them.
- An access key this replica found valid within the cache's TTL is re-verified
  without a slot (its positive entry lives only the fallback TTL without Redis).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.tokens import hash_token
from keyplane.errors import InvalidCredentials, LoginRefused, ResourceExhausted
from keyplane.services.auth import Credential
from tests.conftest import replica
from tests.factories import OPERATOR, Factory
from tests.integration.conftest import hold_address_slots, sqlite_url

PASSWORD = "correct horse battery staple"
ADDRESS = "10.7.0.1"
# Far above what these in-process steps take; a wait for a slot that never
# settles would otherwise hang the test.
GUARD_SECONDS = 10


async def test_parallel_right_logins_beyond_the_username_budget_all_succeed(
    tmp_path: Path, clock: FrozenClock
) -> None:
    limits = {"ratelimit_login_failures_per_minute": 1, "ratelimit_login_failures_burst": 2}
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **limits) as node:
        factory = Factory(node.services)
        agent = await factory.agent(await factory.customer(), password=PASSWORD)
        results: list[str] = []

        async def login() -> None:
            found, _token = await node.services.auth.login(agent.username, PASSWORD, client=ADDRESS)
            results.append(str(found.id))

        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(login)
        assert results == [str(agent.id)] * 8


async def test_parallel_wrong_logins_still_check_at_most_the_username_budget(
    tmp_path: Path, clock: FrozenClock
) -> None:
    limits = {"ratelimit_login_failures_per_minute": 1, "ratelimit_login_failures_burst": 2}
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **limits) as node:
        factory = Factory(node.services)
        agent = await factory.agent(await factory.customer(), password=PASSWORD)
        outcomes: list[str] = []

        async def login() -> None:
            try:
                await node.services.auth.login(agent.username, "wrong" + PASSWORD, client=ADDRESS)
            except LoginRefused:
                outcomes.append("refused")
            except ResourceExhausted:
                outcomes.append("limited")

        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(login)
        assert sorted(outcomes) == ["limited"] * 6 + ["refused"] * 2
        # The username is blocked from that address now, even with the right password.
        with pytest.raises(ResourceExhausted):
            await node.services.auth.login(agent.username, PASSWORD, client=ADDRESS)


async def test_logins_waiting_for_their_username_hold_no_slot_of_the_address(
    tmp_path: Path, clock: FrozenClock
) -> None:
    limits = {
        "ratelimit_login_failures_per_minute": 1,
        "ratelimit_login_failures_burst": 1,
        "ratelimit_auth_failures_per_minute": 1,
        "ratelimit_auth_failures_burst": 3,
    }
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **limits) as node:
        services = node.services
        factory = Factory(services)
        customer = await factory.customer()
        agent = await factory.agent(customer, password=PASSWORD)
        key = await factory.identity_token(customer)
        release = anyio.Event()
        real_verify = services.passwords.verify

        async def slow_verify(password_hash: str | None, password: str) -> bool:
            await release.wait()  # a password check in progress
            return await real_verify(password_hash, password)

        services.passwords.verify = slow_verify  # type: ignore[method-assign]
        logged_in = 0

        async def login() -> None:
            nonlocal logged_in
            await services.auth.login(agent.username, PASSWORD, client=ADDRESS)
            logged_in += 1

        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as tg:
                for _ in range(5):  # one checks its password, four wait for the username
                    tg.start_soon(login)
                await anyio.wait_all_tasks_blocked()
                # Only the login checking its password holds a slot of the address.
                identity, _ = await services.auth.authenticate(
                    Credential("accesskey", key, "header"), client=ADDRESS
                )
                assert identity.customer_id == customer.id
                assert logged_in == 0
                release.set()
        assert logged_in == 5


async def test_a_recently_valid_key_is_reverified_without_a_slot(
    tmp_path: Path, clock: FrozenClock
) -> None:
    # No positive entry outlives the request: every verification reads the database.
    limits = {
        "cache_fallback_ttl": 0,
        "ratelimit_auth_failures_per_minute": 1,
        "ratelimit_auth_failures_burst": 2,
    }
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **limits) as node:
        services = node.services
        factory = Factory(services)
        customer = await factory.customer()
        known = Credential("accesskey", await factory.identity_token(customer), "header")
        fresh = Credential("accesskey", await factory.identity_token(customer), "header")
        await services.auth.authenticate(known, client=ADDRESS)  # found valid once

        release = anyio.Event()
        answered: list[uuid.UUID] = []

        async def verify(credential: Credential) -> None:
            identity, _ = await services.auth.authenticate(credential, client=ADDRESS)
            answered.append(identity.id)

        with anyio.fail_after(GUARD_SECONDS):
            async with anyio.create_task_group() as tg:
                await hold_address_slots(services, ADDRESS, 2, release, tg)
                # Every slot of the address is pending: the known key needs none.
                await verify(known)
                assert len(answered) == 1
                # A key this replica never found valid waits for a slot.
                tg.start_soon(verify, fresh)
                await anyio.wait_all_tasks_blocked()
                assert len(answered) == 1
                release.set()
        assert len(answered) == 2


async def test_guesses_never_pass_as_recently_valid(tmp_path: Path, clock: FrozenClock) -> None:
    limits = {
        "cache_fallback_ttl": 0,
        "ratelimit_auth_failures_per_minute": 1,
        "ratelimit_auth_failures_burst": 3,
    }
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **limits) as node:
        services = node.services
        factory = Factory(services)
        customer = await factory.customer()
        key, token = await factory.accesskey(customer)
        await services.auth.authenticate(Credential("accesskey", token, "header"), client=ADDRESS)
        outcomes: list[str] = []
        for index in range(6):
            guess = Credential("accesskey", "vb" + "_" + f"{index:032d}", "header")
            try:
                await services.auth.authenticate(guess, client=ADDRESS)
            except InvalidCredentials:
                outcomes.append("refused")
            except ResourceExhausted:
                outcomes.append("limited")
        assert outcomes == ["refused"] * 3 + ["limited"] * 3
        assert services.cache.recently_valid(hash_token(token))
        # Once deleted, the formerly valid key is no longer vouched for.
        await services.accesskeys.delete(OPERATOR, key.id)
        assert not services.cache.recently_valid(hash_token(token))
