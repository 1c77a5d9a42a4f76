"""POST /v1.0/accesskeys and the show-once token (contract sections 3, 4 and 5)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from keyplane.store.tables import accesskeys
from tests.factories import bearer, fake_token, login
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    Tenant,
    assert_accesskey_shape,
    assert_error,
    create_key,
    fmt,
    key_url,
    parse,
)

ONE_DAY = 86_400


async def _events(services: Services, customer_id: uuid.UUID) -> list[dict[str, Any]]:
    async with services.database.reader() as repos:
        return await repos.events.list_for_customer(customer_id)


async def _live_count(client: httpx.AsyncClient, tenant: Tenant) -> int:
    response = await client.get(KEYS, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return len(response.json()["result"])


async def test_create_returns_the_contract_object_with_token(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    response = await client.post(
        KEYS,
        json={"name": "My New Accesskey", "detail": "for reporting", "expire": 31_536_000},
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_accesskey_shape(body, with_token=True)
    assert body["name"] == "My New Accesskey"
    assert body["detail"] == "for reporting"
    assert body["customer_id"] == tenant.id
    assert body["token"].startswith("vb_")
    assert len(body["token"]) == 35
    assert body["token_prefix"] == body["token"][:11]
    assert body["tm_create"] == fmt(clock.now()) == "2026-12-01T10:15:30.123456Z"
    assert body["tm_expire"] == "2027-12-01T10:15:30.123456Z"
    assert parse(body["tm_expire"]) == parse(body["tm_create"]) + timedelta(seconds=31_536_000)
    assert body["tm_update"] is None
    assert body["tm_delete"] is None


@pytest.mark.parametrize("expire", [ONE_DAY, ONE_DAY + 1, 1_000_000, 7 * ONE_DAY])
async def test_tm_expire_is_creation_time_plus_expire(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant, expire: int
) -> None:
    clock.advance(0.000_001 * 42 + 3)
    body = await create_key(client, tenant.auth, expire=expire)
    assert parse(body["tm_create"]) == clock.now()
    assert parse(body["tm_expire"]) == clock.now() + timedelta(seconds=expire)


async def test_new_token_authenticates_and_stored_state_is_hash_and_prefix(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    body = await create_key(client, tenant.auth)
    token = body["token"]
    me = await client.get("/v1.0/customer", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["id"] == tenant.id
    async with services.database.reader() as repos:
        row = (
            (
                await repos.connection.execute(
                    select(accesskeys).where(accesskeys.c.id == uuid.UUID(body["id"]))
                )
            )
            .mappings()
            .one()
        )
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["token_prefix"] == token[:11]
    assert token not in json.dumps({k: str(v) for k, v in row.items()})


async def test_tokens_are_distinct(client: httpx.AsyncClient, tenant: Tenant) -> None:
    tokens = {(await create_key(client, tenant.auth))["token"] for _ in range(20)}
    assert len(tokens) == 20


async def test_token_is_shown_only_in_the_create_response(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="once")
    token, key_id = created["token"], created["id"]
    responses = [
        await client.get(key_url(key_id), headers=tenant.auth),
        await client.get(KEYS, headers=tenant.auth),
        await client.put(key_url(key_id), json={"name": "renamed"}, headers=tenant.auth),
        await client.delete(key_url(key_id), headers=tenant.auth),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert token not in response.text
        assert token[3:] not in response.text
        assert '"token"' not in response.text
    single = responses[0].json()
    assert_accesskey_shape(single)
    for item in responses[1].json()["result"]:
        assert_accesskey_shape(item)
    assert_accesskey_shape(responses[2].json())
    assert_accesskey_shape(responses[3].json())
    events = await _events(services, tenant.customer.id)
    assert events
    for event in events:
        assert "token" not in event["payload"]
        assert token not in json.dumps(event, default=str)
        assert token[3:] not in json.dumps(event, default=str)


async def test_create_records_an_event_without_token(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    before = await _events(services, tenant.customer.id)
    created = await create_key(client, tenant.auth, name="evented")
    after = await _events(services, tenant.customer.id)
    assert len(after) == len(before) + 1
    event = after[-1]
    assert event["type"] == "accesskey_created"
    expected = {k: v for k, v in created.items() if k != "token"}
    assert event["payload"] == expected


async def test_admin_agent_session_can_create(client: httpx.AsyncClient, tenant: Tenant) -> None:
    token = await login(client, tenant.username, PASSWORD)
    body = await create_key(client, bearer(token), name="by agent")
    assert body["customer_id"] == tenant.id


# --- expire ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expire",
    [
        ONE_DAY - 1,
        0,
        1,
        -1,
        -ONE_DAY,
        86_400.5,
        86_400.0,
        "86400",
        "",
        True,
        False,
        None,
        [86_400],
        {"seconds": 86_400},
        2**31,
        10**40,
    ],
    ids=repr,
)
async def test_invalid_expire_is_rejected(
    client: httpx.AsyncClient, tenant: Tenant, expire: object
) -> None:
    response = await client.post(KEYS, json={"name": "x", "expire": expire}, headers=tenant.auth)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert await _live_count(client, tenant) == 1  # only the tenant's own key


async def test_missing_expire_is_rejected(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(KEYS, json={"name": "x", "detail": "y"}, headers=tenant.auth)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


async def test_no_maximum_by_default(services: Services) -> None:
    assert services.settings.accesskey_max_expire is None
    assert services.accesskeys.max_expire is None


async def test_operator_maximum_has_its_own_error(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    services.accesskeys.max_expire = 10 * ONE_DAY
    response = await client.post(KEYS, json={"expire": 10 * ONE_DAY + 1}, headers=tenant.auth)
    message = assert_error(response, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
    assert "864000" in message
    assert "KEYPLANE_ACCESSKEY_MAX_EXPIRE" in message
    body = await create_key(client, tenant.auth, expire=10 * ONE_DAY)
    assert parse(body["tm_expire"]) - parse(body["tm_create"]) == timedelta(days=10)


async def test_expire_bounds_are_inclusive(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    # Ten years, as VoIPBIN's CLI may ask, and the largest int32.
    for expire in (ONE_DAY, 315_360_000, 2_147_483_647):
        body = await create_key(client, tenant.auth, expire=expire)
        assert parse(body["tm_expire"]) - parse(body["tm_create"]) == timedelta(seconds=expire)


# --- name and detail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{}, {"name": None, "detail": None}, {"name": None}, {"detail": None}],
    ids=["missing", "both-null", "name-null", "detail-null"],
)
async def test_missing_or_null_name_and_detail_become_empty(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any]
) -> None:
    response = await client.post(KEYS, json={"expire": ONE_DAY, **fields}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == ""
    assert body["detail"] == ""


@pytest.mark.parametrize(
    "fields",
    [{"name": 5}, {"detail": ["x"]}, {"name": {"a": 1}}, {"detail": True}],
    ids=["int-name", "list-detail", "object-name", "bool-detail"],
)
async def test_wrong_typed_name_or_detail_is_invalid_json_body(
    client: httpx.AsyncClient, tenant: Tenant, fields: dict[str, Any]
) -> None:
    response = await client.post(KEYS, json={"expire": ONE_DAY, **fields}, headers=tenant.auth)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY")


@pytest.mark.parametrize(
    "content",
    [
        b"name=a&expire=86400",
        b"",
        b"{",
        b"[]",
        b'[{"expire": 86400}]',
        b'"x"',
        b"1",
        b"null",
        b'{"expire": 86400',
        b"[" * 30_000 + b"]" * 30_000,
        b'{"expire": NaN}',
        b'{"expire": 86400, "note": Infinity}',  # not JSON (RFC 8259), though Python reads it
        b"\xff\xfe{}",
    ],
    ids=repr,
)
async def test_body_not_a_json_object_is_invalid_json_body(
    client: httpx.AsyncClient, tenant: Tenant, content: bytes
) -> None:
    headers = {**tenant.auth, "Content-Type": "application/json"}
    response = await client.post(KEYS, content=content, headers=headers)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY")


async def test_unknown_and_read_only_fields_are_ignored_on_create(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant, other: Tenant
) -> None:
    chosen_id = str(uuid.uuid4())
    response = await client.post(
        KEYS,
        json={
            "name": "n",
            "detail": "d",
            "expire": ONE_DAY,
            "id": chosen_id,
            "customer_id": other.id,
            "token": fake_token("C"),
            "token_prefix": "vb" + "_" + "C" * 8,
            "tm_create": "2020-01-01T00:00:00.000000Z",
            "tm_expire": "2099-01-01T00:00:00.000000Z",
            "tm_update": "2020-01-01T00:00:00.000000Z",
            "tm_delete": "2020-01-01T00:00:00.000000Z",
            "unknown": {"nested": [1, 2, 3]},
        },
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_accesskey_shape(body, with_token=True)
    assert body["id"] != chosen_id
    assert body["customer_id"] == tenant.id
    assert body["token"] != fake_token("C")
    assert body["token_prefix"] == body["token"][:11]
    assert body["tm_create"] == fmt(clock.now())
    assert parse(body["tm_expire"]) == clock.now() + timedelta(seconds=ONE_DAY)
    assert body["tm_update"] is None
    assert body["tm_delete"] is None
    other_list = await client.get(KEYS, headers=other.auth)
    assert body["id"] not in other_list.text


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data"],
)
async def test_json_is_parsed_whatever_the_content_type(
    client: httpx.AsyncClient, tenant: Tenant, content_type: str | None
) -> None:
    headers = dict(tenant.auth)
    if content_type:
        headers["Content-Type"] = content_type
    raw = json.dumps({"name": "curl", "detail": "-d", "expire": ONE_DAY})
    response = await client.post(KEYS, content=raw, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["detail"]) == ("curl", "-d")


async def test_oversized_body_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    raw = json.dumps({"name": "x" * 70_000, "expire": ONE_DAY})
    response = await client.post(KEYS, content=raw, headers=tenant.auth)
    # The contract names no size limit; whatever the reason, it is a client error envelope.
    assert response.status_code in (400, 413), response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["request_id"] == response.headers["x-request-id"]
    assert await _live_count(client, tenant) == 1
