"""GET/PUT/DELETE /v1.0/accesskeys/{id}, permissions and GET /v1.0/customer (sections 1, 4, 5)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from tests.factories import CUSTOMER_FIELDS, bearer, login
from tests.integration.conftest import (
    KEYS,
    TIMESTAMP,
    Tenant,
    assert_accesskey_shape,
    assert_error,
    create_key,
    fmt,
    key_url,
    quick_agent,
    without_request_id,
)


async def _events(services: Services, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    async with services.database.reader() as repos:
        return await repos.events.list_for_customer(customer_id)


async def _agent_auth(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: int
) -> dict[str, str]:
    agent = await quick_agent(services, tenant.customer, permission=permission)
    return bearer(await login(client, agent.username, "correct horse battery staple"))


# --- get ------------------------------------------------------------------------------------


async def test_get_returns_the_key_without_token(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.auth, name="n", detail="d")
    response = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_accesskey_shape(body)
    assert body == {k: v for k, v in created.items() if k != "token"}


async def test_unknown_id_is_resource_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, key_url(uuid.uuid4()), json={"name": "x"}, headers=tenant.auth
        )
        assert_error(response, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "123", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "%20", "a" * 100]
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_malformed_id_is_invalid_id(
    client: httpx.AsyncClient, tenant: Tenant, method: str, bad_id: str
) -> None:
    response = await client.request(
        method, f"{KEYS}/{bad_id}", json={"name": "x"}, headers=tenant.auth
    )
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ID")


# --- update -----------------------------------------------------------------------------------


async def test_update_changes_name_and_detail_and_sets_tm_update(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="old", detail="old detail")
    clock.advance(3600.5)
    response = await client.put(
        key_url(created["id"]), json={"name": "new", "detail": "new detail"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_accesskey_shape(body)
    assert body["name"] == "new"
    assert body["detail"] == "new detail"
    assert body["tm_update"] == fmt(clock.now())
    for field in ("id", "customer_id", "token_prefix", "tm_expire", "tm_create", "tm_delete"):
        assert body[field] == created[field], field
    fetched = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert fetched.json() == body
    # The key still authenticates with its unchanged token.
    assert (await client.get(KEYS, headers=bearer(created["token"]))).status_code == 200


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "only name"}, ("only name", "")),
        ({"detail": "only detail"}, ("", "only detail")),
        ({}, ("", "")),
        ({"name": None, "detail": None}, ("", "")),
    ],
    ids=["detail-missing", "name-missing", "both-missing", "both-null"],
)
async def test_update_missing_field_becomes_empty(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fields: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    created = await create_key(client, tenant.auth, name="n", detail="d")
    response = await client.put(key_url(created["id"]), json=fields, headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["detail"]) == expected


async def test_update_ignores_read_only_and_unknown_fields(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant, other: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="n", detail="d")
    clock.advance(10)
    response = await client.put(
        key_url(created["id"]),
        json={
            "name": "renamed",
            "detail": "redetailed",
            "token": "vb" + "_" + "B" * 32,
            "token_prefix": "vb" + "_" + "B" * 8,
            "expire": 86_400 * 1000,
            "id": str(uuid.uuid4()),
            "customer_id": other.id,
            "tm_create": "2020-01-01T00:00:00.000000Z",
            "tm_expire": "2099-01-01T00:00:00.000000Z",
            "tm_update": "2020-01-01T00:00:00.000000Z",
            "tm_delete": "2020-01-01T00:00:00.000000Z",
            "whatever": [1, {"x": None}],
        },
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["detail"]) == ("renamed", "redetailed")
    for field in ("id", "customer_id", "token_prefix", "tm_expire", "tm_create"):
        assert body[field] == created[field], field
    assert body["tm_update"] == fmt(clock.now())
    assert body["tm_delete"] is None
    assert "token" not in body
    assert (await client.get(KEYS, headers=bearer(created["token"]))).status_code == 200
    assert (await client.get(KEYS, headers=bearer("vb" + "_" + "B" * 32))).status_code == 401


@pytest.mark.parametrize(
    "content",
    [b"name=x", b"", b"[]", b'["name"]', b"null", b'{"name": 1}', b'{"detail": ["d"]}'],
)
async def test_update_body_not_a_json_object_is_invalid_json_body(
    client: httpx.AsyncClient, tenant: Tenant, content: bytes
) -> None:
    created = await create_key(client, tenant.auth, name="keep")
    headers = {**tenant.auth, "Content-Type": "application/json"}
    response = await client.put(key_url(created["id"]), content=content, headers=headers)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY")
    after = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert after.json()["name"] == "keep"
    assert after.json()["tm_update"] is None


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded"])
async def test_update_parses_json_whatever_the_content_type(
    client: httpx.AsyncClient, tenant: Tenant, content_type: str | None
) -> None:
    created = await create_key(client, tenant.auth)
    headers = dict(tenant.auth)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.put(
        key_url(created["id"]), content=b'{"name": "via curl", "detail": "x"}', headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "via curl"


# --- delete ---------------------------------------------------------------------------------


async def test_delete_is_soft_and_returns_the_object(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="doomed")
    clock.advance(60)
    response = await client.delete(key_url(created["id"]), headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_accesskey_shape(body)
    assert body["tm_delete"] == fmt(clock.now())
    assert body["tm_update"] == fmt(clock.now())
    for field in ("id", "customer_id", "name", "detail", "token_prefix", "tm_expire", "tm_create"):
        assert body[field] == created[field], field


async def test_deleted_key_is_gone_everywhere(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="doomed")
    deleted = await client.delete(key_url(created["id"]), headers=tenant.auth)
    assert deleted.status_code == 200
    # The key itself no longer authenticates, by any source.
    for request in (
        {"headers": bearer(created["token"])},
        {"params": {"accesskey": created["token"]}},
        {"headers": {"Cookie": f"accesskey={created['token']}"}},
    ):
        response = await client.get("/v1.0/customer", **request)
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    # The caller's own deleted key: 409 STATE_INVALID, as VoIPBIN answers.
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, key_url(created["id"]), json={"name": "zombie"}, headers=tenant.auth
        )
        assert_error(response, 409, "FAILED_PRECONDITION", "STATE_INVALID")
        assert "zombie" not in response.text
    listed = await client.get(KEYS, headers=tenant.auth)
    assert created["id"] not in [item["id"] for item in listed.json()["result"]]


async def test_a_key_can_delete_itself(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create_key(client, tenant.auth)
    own = bearer(created["token"])
    response = await client.delete(key_url(created["id"]), headers=own)
    assert response.status_code == 200, response.text
    again = await client.get(key_url(created["id"]), headers=own)
    assert_error(again, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


# --- events -------------------------------------------------------------------------------------


async def test_events_for_create_update_delete_carry_the_key_without_token(
    client: httpx.AsyncClient, clock: FrozenClock, services: Services, tenant: Tenant
) -> None:
    before = len(await _events(services, tenant.customer.id))
    created = await create_key(client, tenant.auth, name="a", detail="b")
    clock.advance(5)
    updated = (
        await client.put(key_url(created["id"]), json={"name": "c"}, headers=tenant.auth)
    ).json()
    clock.advance(5)
    deleted = (await client.delete(key_url(created["id"]), headers=tenant.auth)).json()
    events = (await _events(services, tenant.customer.id))[before:]
    assert [event["type"] for event in events] == [
        "accesskey_created",
        "accesskey_updated",
        "accesskey_deleted",
    ]
    assert events[0]["payload"] == {k: v for k, v in created.items() if k != "token"}
    assert events[1]["payload"] == updated
    assert events[2]["payload"] == deleted
    for event in events:
        assert "token" not in event["payload"]
        assert created["token"] not in str(event)


async def test_failed_changes_record_no_event(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, other: Tenant
) -> None:
    created = await create_key(client, tenant.auth)
    before = await _events(services, tenant.customer.id)
    await client.post(KEYS, json={"expire": 5}, headers=tenant.auth)
    await client.put(key_url(created["id"]), json={"name": "x"}, headers=other.auth)
    await client.delete(key_url(created["id"]), headers=other.auth)
    await client.put(key_url(uuid.uuid4()), json={"name": "x"}, headers=tenant.auth)
    assert await _events(services, tenant.customer.id) == before


# --- other customers ----------------------------------------------------------------------------


async def test_other_customers_key_is_not_found_never_forbidden(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, other: Tenant
) -> None:
    theirs = await create_key(client, other.auth, name="theirs", detail="private")
    agent_auth = await _agent_auth(client, services, tenant, 32)
    for auth in (tenant.auth, agent_auth):
        for method in ("GET", "PUT", "DELETE"):
            response = await client.request(
                method, key_url(theirs["id"]), json={"name": "pwned"}, headers=auth
            )
            assert_error(response, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
            assert "theirs" not in response.text
            # Indistinguishable from an id that does not exist at all.
            missing = await client.request(
                method, key_url(uuid.uuid4()), json={"name": "pwned"}, headers=auth
            )
            assert without_request_id(response) == without_request_id(missing)
    untouched = await client.get(key_url(theirs["id"]), headers=other.auth)
    assert untouched.status_code == 200
    assert untouched.json() == {k: v for k, v in theirs.items() if k != "token"}
    assert (await client.get("/v1.0/customer", headers=bearer(theirs["token"]))).status_code == 200


async def test_list_shows_only_own_keys(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    mine = {(await create_key(client, tenant.auth))["id"] for _ in range(3)}
    theirs = {(await create_key(client, other.auth))["id"] for _ in range(2)}
    listed = await client.get(KEYS, headers=tenant.auth)
    ids = {item["id"] for item in listed.json()["result"]}
    assert mine <= ids
    assert not ids & theirs
    assert {item["customer_id"] for item in listed.json()["result"]} == {tenant.id}


async def test_key_created_by_caller_belongs_to_callers_customer(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    created = await client.post(
        KEYS, params={"customer_id": other.id}, json={"expire": 86_400}, headers=tenant.auth
    )
    assert created.json()["customer_id"] == tenant.id


async def test_project_super_admin_cannot_reach_other_customers_keys(
    client: httpx.AsyncClient, clock: FrozenClock, services: Services, tenant: Tenant, other: Tenant
) -> None:
    theirs = await create_key(client, other.auth, name="theirs")
    super_auth = await _agent_auth(client, services, tenant, 1)
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, key_url(theirs["id"]), json={"name": "by super"}, headers=super_auth
        )
        assert_error(response, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
    # Another customer's deleted key is 404 too: the customer is compared first.
    await client.delete(key_url(theirs["id"]), headers=other.auth)
    gone = await client.get(key_url(theirs["id"]), headers=super_auth)
    assert_error(gone, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
    # Its own customer's keys it manages like any admin.
    mine = await create_key(client, super_auth, name="mine")
    assert mine["customer_id"] == tenant.id
    clock.advance(1)
    put = await client.put(key_url(mine["id"]), json={"name": "by super"}, headers=super_auth)
    assert put.status_code == 200, put.text
    deleted = await client.delete(key_url(mine["id"]), headers=super_auth)
    assert deleted.json()["tm_delete"] == fmt(clock.now())
    listed = await client.get(KEYS, headers=super_auth)
    assert {item["customer_id"] for item in listed.json()["result"]} == {tenant.id}


async def test_accesskey_is_never_a_super_admin(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    theirs = await create_key(client, other.auth)
    response = await client.get(key_url(theirs["id"]), headers=tenant.auth)
    assert_error(response, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")


# --- permissions --------------------------------------------------------------------------------


@pytest.mark.parametrize("permission", [0, 16, 64, 16 | 64, 0x0100])
async def test_agent_without_customer_admin_is_denied_everywhere(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: int
) -> None:
    existing = await create_key(client, tenant.auth, name="keep")
    auth = await _agent_auth(client, services, tenant, permission)
    calls = [
        ("POST", KEYS, {"name": "x", "detail": "y", "expire": 86_400}),
        ("GET", KEYS, None),
        ("GET", key_url(existing["id"]), None),
        ("PUT", key_url(existing["id"]), {"name": "x", "detail": "y"}),
        ("DELETE", key_url(existing["id"]), None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=auth)
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    after = await client.get(key_url(existing["id"]), headers=tenant.auth)
    assert after.json()["name"] == "keep"
    assert after.json()["tm_delete"] is None
    listed = await client.get(KEYS, headers=tenant.auth)
    assert len(listed.json()["result"]) == 2  # the tenant's key and ``existing``


@pytest.mark.parametrize("permission", [32, 32 | 16, 65535])
async def test_agent_with_customer_admin_manages_keys(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: int
) -> None:
    auth = await _agent_auth(client, services, tenant, permission)
    created = await create_key(client, auth, name="by agent")
    assert created["customer_id"] == tenant.id
    assert (await client.get(KEYS, headers=auth)).status_code == 200
    assert (await client.get(key_url(created["id"]), headers=auth)).status_code == 200
    put = await client.put(key_url(created["id"]), json={"name": "x"}, headers=auth)
    assert put.status_code == 200
    assert (await client.delete(key_url(created["id"]), headers=auth)).status_code == 200


# --- the customer -------------------------------------------------------------------------------


@pytest.mark.parametrize("permission", [0, 1, 16, 32, 64, 65535])
async def test_customer_endpoint_for_any_agent(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: int
) -> None:
    auth = await _agent_auth(client, services, tenant, permission)
    response = await client.get("/v1.0/customer", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.id


async def test_customer_endpoint_returns_exactly_the_contract_fields(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1.0/customer", headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    # Empty strings (detail, webhook_method, webhook_uri) are left out, as VoIPBIN does.
    assert set(body) == CUSTOMER_FIELDS - {
        "detail",
        "phone_number",
        "address",
        "webhook_method",
        "webhook_uri",
    }
    assert body["id"] == tenant.id
    assert body["name"] == tenant.customer.name
    assert body["email"] == tenant.customer.email
    assert body["billing_account_id"] == "00000000-0000-0000-0000-000000000000"
    assert body["metadata"] == {"rtp_debug": False}
    assert body["email_verified"] is False
    assert body["status"] == "active"
    assert body["identity_verification_status"] == "none"
    assert body["tm_deletion_scheduled"] is None
    assert TIMESTAMP.fullmatch(body["tm_create"])
    assert body["tm_update"] is None
    assert body["tm_delete"] is None
    assert "password" not in response.text


async def test_expired_key_is_still_a_resource(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, expire=86_400)
    clock.advance(86_400 + 1)
    response = await client.get("/v1.0/customer", headers=bearer(created["token"]))
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    fetched = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["tm_expire"] == created["tm_expire"]
    renamed = await client.put(key_url(created["id"]), json={"name": "old"}, headers=tenant.auth)
    assert renamed.status_code == 200, renamed.text
    deleted = await client.delete(key_url(created["id"]), headers=tenant.auth)
    assert deleted.status_code == 200, deleted.text
