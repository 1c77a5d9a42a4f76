"""What authentication tells a client, and what it costs: the message of a restricted
key's refusal, an address out of failure budget refused whatever it sends, a session
this replica vouches for taking no slot of that budget, and every use of a key recorded.

In-process and on SQLite (the rules do not depend on the database), so that
``make mutate`` runs them against the mutated services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from keyplane.cache.verification import Miss, VerifiedKey
from keyplane.domain.clock import FrozenClock
from keyplane.domain.tokens import hash_token
from keyplane.services.auth import Credential
from tests.conftest import Replica, replica
from tests.factories import Factory, bearer, fake_token
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    assert_error,
    create_key,
    fmt,
    hold_address_slots,
    key_url,
    sqlite_url,
)

OFFICE = "198.51.100.7"
ELSEWHERE = "203.0.113.9"
ALLOWLIST_REFUSAL = "This access key may not be used from this address (its IP allowlist)."
SCOPES_REFUSAL = "This access key's scopes do not allow this method on this path."
ADDRESS_BLOCKED = "Too many failed attempts from this address; retry after the time in Retry-After."
# A failure budget of two refused credentials per address, refilling once a minute.
SMALL_BUDGET = {"ratelimit_auth_failures_per_minute": 1, "ratelimit_auth_failures_burst": 2}


@pytest.fixture
async def node(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Replica]:
    async with replica(tmp_path, sqlite_url(tmp_path), clock, **SMALL_BUDGET) as running:
        yield running


async def a_customers_key(node: Replica) -> dict[str, str]:
    """The ``Authorization`` header of a working key of a new customer."""
    factory = Factory(node.services)
    return bearer(await factory.identity_token(await factory.customer()))


async def verify(http: httpx.AsyncClient, token: str, method: str, uri: str) -> httpx.Response:
    headers = {"X-Original-URI": uri, "X-Original-Method": method, **bearer(token)}
    return await http.get("/auth/verify", headers=headers)


async def test_a_restricted_keys_refusal_says_whether_its_allowlist_or_its_scopes_refused(
    node: Replica,
) -> None:
    admin = await a_customers_key(node)
    async with node.client(OFFICE) as office, node.client(ELSEWHERE) as elsewhere:
        fenced = (await create_key(office, admin, allowed_networks=["198.51.100.0/24"]))["token"]
        read_only = (await create_key(office, admin, scopes="read_only"))["token"]
        by_address = [
            await elsewhere.get("/v1.0/customer", headers=bearer(fenced)),
            await verify(elsewhere, fenced, "GET", "/v1.0/calls"),
        ]
        by_scopes = [
            await office.post(KEYS, json={"expire": 86_400}, headers=bearer(read_only)),
            await verify(office, read_only, "POST", "/v1.0/calls"),
        ]
        # The same key from its network, and the read it may do, pass.
        assert (await office.get("/v1.0/customer", headers=bearer(fenced))).status_code == 200
        assert (await verify(office, read_only, "GET", "/v1.0/calls")).status_code == 200
    for response in by_address:
        message = assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        assert message == ALLOWLIST_REFUSAL
    for response in by_scopes:
        message = assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        assert message == SCOPES_REFUSAL


async def test_an_address_out_of_failure_budget_is_refused_even_a_key_it_used_before(
    node: Replica,
) -> None:
    good = await a_customers_key(node)
    async with node.client(OFFICE) as shared, node.client(ELSEWHERE) as elsewhere:
        # Verified once from this address: this replica's cache now vouches for it.
        assert (await shared.get("/v1.0/customer", headers=good)).status_code == 200
        for char in "AB":  # the budget of two refused credentials
            guess = await shared.get("/v1.0/customer", headers=bearer(fake_token(char)))
            assert_error(guess, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        over = await shared.get("/v1.0/customer", headers=bearer(fake_token("C")))
        assert_error(over, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
        # Refused before its credential is looked at, however well known that is.
        refused = await shared.get("/v1.0/customer", headers=good)
        assert assert_error(refused, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED") == (
            ADDRESS_BLOCKED
        )
        assert int(refused.headers["Retry-After"]) >= 1
        # Only that address: the same key from another one passes.
        assert (await elsewhere.get("/v1.0/customer", headers=good)).status_code == 200


async def test_a_session_this_replica_vouches_for_takes_no_slot_of_its_address(
    node: Replica,
) -> None:
    services = node.services
    services.cache.set_connected(True)  # entries live the full TTL, as with Redis delivering
    factory = Factory(services)
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    _, token = await services.auth.login(agent.username, PASSWORD, client=OFFICE)
    session = Credential("session", token, "header")
    await services.auth.authenticate(session, client=OFFICE)  # the agent is cached now
    release = anyio.Event()
    answered: list[str] = []

    async def authenticate() -> None:
        identity, _ = await services.auth.authenticate(session, client=OFFICE)
        answered.append(str(identity.id))

    async with anyio.create_task_group() as tg:
        try:
            # Every slot of the address pending (the helper checks it).
            await hold_address_slots(services, OFFICE, 2, release, tg)
            assert SMALL_BUDGET["ratelimit_auth_failures_burst"] == 2
            tg.start_soon(authenticate)
            await anyio.wait_all_tasks_blocked()
            # Answered from the cache, while a credential needing a slot would wait.
            assert answered == [str(agent.id)]
        finally:
            release.set()


async def test_every_use_of_a_key_is_recorded_whether_its_check_was_cached_or_not(
    node: Replica, clock: FrozenClock
) -> None:
    services = node.services
    services.cache.set_connected(True)
    factory = Factory(services)
    customer = await factory.customer()
    reader = bearer(await factory.identity_token(customer))
    key, token = await factory.accesskey(customer)
    credential = Credential("accesskey", token, "header")

    async with node.client(OFFICE) as http:

        async def last_used() -> object:
            await services.usage.flush()
            shown = await http.get(
                key_url(key.id), params={"expand": "tm_last_used"}, headers=reader
            )
            assert shown.status_code == 200, shown.text
            return shown.json()["tm_last_used"]

        assert await last_used() is None
        assert isinstance(services.cache.get_key(hash_token(token)), Miss)
        await services.auth.authenticate(credential, client=OFFICE)  # read from the database
        assert await last_used() == fmt(clock.now())
        clock.advance(120)
        assert isinstance(services.cache.get_key(hash_token(token)), VerifiedKey)
        await services.auth.authenticate(credential, client=OFFICE)  # answered from the cache
        assert await last_used() == fmt(clock.now())
