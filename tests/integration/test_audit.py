"""The audit log over HTTP: every change to keys, agents, customers and sessions, with who,
what, when, from which address and the request id; paged, filtered, kept for its retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from keyplane.domain.audit import AUDIT_TYPES
from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Identity
from keyplane.services.audit import AuditRetention
from tests.conftest import Replica, replica
from tests.factories import ONE_DAY, Factory, bearer, login
from tests.integration.conftest import KEYS, PASSWORD, assert_error, fmt, key_url, quick_agent

AUDIT = "/v1.0/audit"
ADDRESS = "198.51.100.23"


@pytest.fixture
async def one(tmp_path: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Replica]:
    async with replica(tmp_path, database_url, clock, audit_retention_days=30) as running:
        yield running


async def entries(one: Replica, auth: dict[str, str], **params: str) -> list[dict[str, Any]]:
    async with one.client(ADDRESS) as http:
        response = await http.get(AUDIT, params=params, headers=auth)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


async def test_key_changes_are_recorded_with_who_where_and_which_request(
    one: Replica, clock: FrozenClock
) -> None:
    factory = Factory(one.services)
    customer = await factory.customer()
    admin, _ = await factory.accesskey(customer)
    auth = bearer(_)
    async with one.client(ADDRESS) as http:
        created = await http.post(
            KEYS, json={"expire": ONE_DAY}, headers={"X-Request-ID": "req-create-1", **auth}
        )
        key_id = created.json()["id"]
        await http.put(key_url(key_id), json={"name": "n"}, headers=auth)
        await http.post(f"{key_url(key_id)}/disable", headers=auth)
        await http.post(f"{key_url(key_id)}/enable", headers=auth)
        rotated = (await http.post(f"{key_url(key_id)}/rotate", headers=auth)).json()
        await http.delete(key_url(rotated["id"]), headers=auth)
    found = await entries(one, auth)
    assert [entry["type"] for entry in found] == [
        "accesskey_deleted",
        "accesskey_rotated",
        "accesskey_created",
        "accesskey_enabled",
        "accesskey_disabled",
        "accesskey_updated",
        "accesskey_created",
        "accesskey_created",  # the admin key, made by the operator...
        "customer_created",  # ...as was the customer
    ]
    newest_create = found[-3]
    assert newest_create["subject_id"] == key_id
    assert newest_create["actor"] == {"type": "accesskey", "id": str(admin.id)}
    assert newest_create["address"] == ADDRESS
    assert newest_create["request_id"] == "req-create-1"
    assert newest_create["tm_create"] == fmt(clock.now())
    assert found[-2]["actor"]["type"] == "operator"
    assert found[-2]["address"] == ""
    for entry in found:
        assert set(entry) == {
            "id",
            "type",
            "actor",
            "subject_id",
            "address",
            "request_id",
            "tm_create",
        }
        assert "vb_" not in str(entry)


async def test_sessions_agents_and_customer_changes_are_recorded(one: Replica) -> None:
    factory = Factory(one.services)
    customer = await factory.customer()
    agent = await quick_agent(one.services, customer)
    async with one.client(ADDRESS) as http:
        session = await login(http, agent.username, PASSWORD)
        auth = bearer(session)
        await http.put("/v1.0/customer", json={"name": "renamed"}, headers=auth)
        await http.post("/v1.0/customer/webhook_secret", headers=auth)
    await one.services.customers.delete_agent(Identity.operator(), agent.id)
    types = [
        entry["type"]
        for entry in await entries(one, bearer((await factory.accesskey(customer))[1]))
    ]
    assert types[:5] == [
        "accesskey_created",
        "agent_deleted",
        "customer_webhook_secret_replaced",
        "customer_updated",
        "session_created",
    ]
    assert "customer_created" in types
    assert session not in str(types)


async def test_filters_paging_and_permission(one: Replica, clock: FrozenClock) -> None:
    factory = Factory(one.services)
    customer = await factory.customer()
    other = await factory.customer()
    _, token = await factory.accesskey(customer)
    auth = bearer(token)
    start = clock.now()
    async with one.client(ADDRESS) as http:
        for _ in range(5):
            clock.advance(60)
            await http.post(KEYS, json={"expire": ONE_DAY}, headers=auth)
        page = (await http.get(AUDIT, params={"page_size": "2"}, headers=auth)).json()
        assert len(page["result"]) == 2
        rest = await http.get(
            AUDIT, params={"page_token": page["next_page_token"], "page_size": "100"}, headers=auth
        )
        ids = [e["id"] for e in page["result"]] + [e["id"] for e in rest.json()["result"]]
        assert len(ids) == len(set(ids)) == 6 + 1  # five keys, the token's key, the customer
        window = await http.get(
            AUDIT,
            params={
                "type": "accesskey_created",
                "since": fmt(start + timedelta(seconds=120)),
                "until": fmt(start + timedelta(seconds=240)),
            },
            headers=auth,
        )
        assert len(window.json()["result"]) == 2
        bad = await http.get(AUDIT, params={"since": "yesterday"}, headers=auth)
        assert_error(bad, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_PARAMETER")
        agent = await quick_agent(one.services, customer, permission=16)
        weak = bearer(await login(http, agent.username, PASSWORD))
        assert_error(
            await http.get(AUDIT, headers=weak), 403, "PERMISSION_DENIED", "PERMISSION_DENIED"
        )
    # Another customer's trail is not visible.
    theirs = await entries(one, bearer((await factory.accesskey(other))[1]))
    assert {entry["type"] for entry in theirs} == {"customer_created", "accesskey_created"}


async def test_entries_older_than_the_retention_are_pruned(
    one: Replica, clock: FrozenClock
) -> None:
    factory = Factory(one.services)
    customer = await factory.customer()
    await factory.accesskey(customer)
    clock.advance(31 * ONE_DAY)
    _, newer = await factory.accesskey(customer)
    # customer_created and the first accesskey_created are past the retention.
    assert await one.services.audit_retention.prune() == 2
    found = await entries(one, bearer(newer))
    assert [entry["type"] for entry in found] == ["accesskey_created"]


async def test_pruning_goes_in_bounded_batches_oldest_first(
    one: Replica, clock: FrozenClock
) -> None:
    factory = Factory(one.services)
    customer = await factory.customer()
    for _ in range(6):
        await factory.accesskey(customer)
    clock.advance(31 * ONE_DAY)
    _, newer = await factory.accesskey(customer)
    audit = AuditRetention(one.services.database, clock, retention_days=30, batch=3, pause=0)
    # Seven entries past the retention (the customer, six keys): 3 + 3 + 1.
    assert [await audit.prune_batch() for _ in range(4)] == [3, 3, 1, 0]
    found = await entries(one, bearer(newer))
    assert [entry["type"] for entry in found] == ["accesskey_created"]


async def test_an_unknown_type_is_400_naming_the_known_types(one: Replica) -> None:
    _, token = await Factory(one.services).accesskey(await Factory(one.services).customer())
    async with one.client(ADDRESS) as http:
        refused = await http.get(
            AUDIT, params={"type": "accesskey_created,nope"}, headers=bearer(token)
        )
        assert_error(refused, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_PARAMETER")
        message = refused.json()["error"]["message"]
        for name in AUDIT_TYPES:
            assert name in message
        known = await http.get(AUDIT, params={"type": "session_ended"}, headers=bearer(token))
        assert known.status_code == 200
        assert known.json()["result"] == []
