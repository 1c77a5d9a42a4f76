"""The key lifecycle beyond VoIPBIN, over HTTP: disable and enable, rotation with a grace
period, shortening the expiry, and the opt-in fields of ``?expand=``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.views import EXPANDABLE
from keyplane.services.container import Services
from tests.factories import ACCESSKEY_FIELDS, ONE_DAY, Factory, bearer, login
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
    quick_agent,
)

EXPANDED_FIELDS = ACCESSKEY_FIELDS | set(EXPANDABLE)


async def works(client: httpx.AsyncClient, token: str) -> bool:
    response = await client.get("/v1.0/customer", headers=bearer(token))
    if response.status_code == 401:
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        return False
    assert response.status_code == 200, response.text
    return True


async def post(
    client: httpx.AsyncClient, tenant: Tenant, key_id: object, action: str, **body: Any
) -> httpx.Response:
    return await client.post(f"{key_url(key_id)}/{action}", json=body, headers=tenant.auth)


async def events_of(services: Services, tenant: Tenant) -> list[dict[str, Any]]:
    async with services.database.reader() as repos:
        return await repos.events.list_for_customer(tenant.customer.id)


# --- disable and enable ---------------------------------------------------------------------------


async def test_a_disabled_key_is_refused_like_any_bad_credential_until_enabled(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth)
    token = created["token"]
    assert await works(client, token)  # now in the verification cache

    disabled = await post(client, tenant, created["id"], "disable")
    assert disabled.status_code == 200, disabled.text
    body = disabled.json()
    assert set(body) == EXPANDED_FIELDS
    assert body["tm_disable"] is not None
    assert body["tm_update"] == body["tm_disable"]
    assert not await works(client, token)
    unknown = await client.get("/v1.0/customer", headers=bearer("vb_" + "Z" * 32))
    refused = await client.get("/v1.0/customer", headers=bearer(token))
    assert refused.json()["error"]["message"] == unknown.json()["error"]["message"]

    # Disabled, not deleted: still listed and readable, and reversible.
    listed = await client.get(KEYS, headers=tenant.auth)
    assert created["id"] in [item["id"] for item in listed.json()["result"]]
    enabled = await post(client, tenant, created["id"], "enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["tm_disable"] is None
    assert await works(client, token)  # the refusal was not kept in the cache
    types = [event["type"] for event in await events_of(services, tenant)]
    assert types[-2:] == ["accesskey_disabled", "accesskey_enabled"]


async def test_disable_and_enable_are_idempotent(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    created = await create_key(client, tenant.auth)
    first = (await post(client, tenant, created["id"], "disable")).json()
    clock.advance(5)
    again = await post(client, tenant, created["id"], "disable")
    assert again.status_code == 200
    assert again.json() == first  # the first moment is kept
    await post(client, tenant, created["id"], "enable")
    assert (await post(client, tenant, created["id"], "enable")).status_code == 200
    types = [event["type"] for event in await events_of(services, tenant)]
    assert types.count("accesskey_disabled") == types.count("accesskey_enabled") == 1


async def test_a_key_may_disable_itself(client: httpx.AsyncClient, tenant: Tenant) -> None:
    me = (await client.get("/v1.0/me", headers=tenant.auth)).json()
    assert (await post(client, tenant, me["id"], "disable")).status_code == 200
    assert not await works(client, tenant.key)


@pytest.mark.parametrize("action", ["disable", "enable", "rotate", "expire"])
async def test_lifecycle_actions_keep_voipbins_order_of_refusals(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, action: str
) -> None:
    theirs = await create_key(client, other.auth)
    response = await post(client, tenant, theirs["id"], action, tm_expire=theirs["tm_expire"])
    assert_error(response, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND")
    mine = await create_key(client, tenant.auth)
    await client.delete(key_url(mine["id"]), headers=tenant.auth)
    response = await post(client, tenant, mine["id"], action, tm_expire=mine["tm_expire"])
    assert_error(response, 409, "FAILED_PRECONDITION", "STATE_INVALID")
    response = await post(client, tenant, "nope", action)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ID")
    response = await client.post(f"{key_url(mine['id'])}/{action}")
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")


async def test_an_agent_without_admin_permission_may_not_disable(
    client: httpx.AsyncClient, services: Services, factory: Factory, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth)
    agent = await quick_agent(services, tenant.customer, permission=16)
    auth = bearer(await login(client, agent.username, PASSWORD))
    response = await client.post(f"{key_url(created['id'])}/disable", headers=auth)
    assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert await works(client, created["token"])


# --- rotation -------------------------------------------------------------------------------------


async def test_rotation_gives_a_new_key_and_the_old_one_works_until_the_grace_ends(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    old = await create_key(
        client, tenant.auth, name="billing", detail="nightly", expire=30 * ONE_DAY
    )
    assert await works(client, old["token"])  # cached with its old expiry
    clock.advance(3600)

    response = await post(client, tenant, old["id"], "rotate", grace=600)
    assert response.status_code == 200, response.text
    new = response.json()
    assert set(new) == EXPANDED_FIELDS | {"token"}
    assert new["token"] != old["token"]
    assert new["id"] != old["id"]
    assert (new["name"], new["detail"]) == ("billing", "nightly")
    assert parse(new["tm_expire"]) - parse(new["tm_create"]) == timedelta(days=30)
    assert parse(new["tm_create"]) == clock.now()

    replaced = (
        await client.get(key_url(old["id"]), params={"expand": "all"}, headers=tenant.auth)
    ).json()
    assert replaced["rotated_to"] == new["id"]
    assert parse(replaced["tm_expire"]) == clock.now() + timedelta(seconds=600)

    assert await works(client, new["token"])
    clock.advance(599)
    assert await works(client, old["token"])  # within the grace
    clock.advance(1)
    assert not await works(client, old["token"])  # the grace is over
    assert await works(client, new["token"])

    events = await events_of(services, tenant)
    assert [event["type"] for event in events[-2:]] == ["accesskey_created", "accesskey_rotated"]
    assert events[-2]["payload"]["id"] == new["id"]
    assert events[-1]["payload"]["id"] == old["id"]
    for event in events:
        assert "token" not in event["payload"]
        assert new["token"] not in str(event["payload"])


async def test_rotation_without_grace_stops_the_old_key_at_once(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    old = await create_key(client, tenant.auth)
    assert await works(client, old["token"])
    response = await client.post(f"{key_url(old['id'])}/rotate", headers=tenant.auth)  # no body
    assert response.status_code == 200, response.text
    assert not await works(client, old["token"])
    assert await works(client, response.json()["token"])


async def test_a_key_is_rotated_once_and_never_beyond_its_own_expiry(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    old = await create_key(client, tenant.auth, expire=ONE_DAY)
    clock.advance(ONE_DAY - 60)
    new = (await post(client, tenant, old["id"], "rotate", grace=3600)).json()
    again = await post(client, tenant, old["id"], "rotate", grace=0)
    assert_error(again, 409, "FAILED_PRECONDITION", "STATE_INVALID")
    replaced = await client.get(key_url(old["id"]), params={"expand": "all"}, headers=tenant.auth)
    # The grace never outlives the old key's own expiry.
    assert replaced.json()["tm_expire"] == old["tm_expire"]
    # The replacement can itself be rotated.
    assert (await post(client, tenant, new["id"], "rotate", grace=0)).status_code == 200


async def test_a_disabled_key_is_enabled_before_it_is_rotated(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    old = await create_key(client, tenant.auth)
    await post(client, tenant, old["id"], "disable")
    response = await post(client, tenant, old["id"], "rotate")
    assert "enable" in assert_error(response, 409, "FAILED_PRECONDITION", "STATE_INVALID")


@pytest.mark.parametrize("grace", [-1, 604_801, "60", 1.5, True, [1]])
async def test_a_bad_grace_is_invalid_argument(
    client: httpx.AsyncClient, tenant: Tenant, grace: object
) -> None:
    old = await create_key(client, tenant.auth)
    response = await post(client, tenant, old["id"], "rotate", grace=grace)
    assert "grace" in assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert await works(client, old["token"])


async def test_the_longest_grace_is_seven_days(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    old = await create_key(client, tenant.auth, expire=30 * ONE_DAY)
    response = await post(client, tenant, old["id"], "rotate", grace=7 * ONE_DAY)
    assert response.status_code == 200, response.text
    clock.advance(7 * ONE_DAY - 1)
    assert await works(client, old["token"])
    clock.advance(1)
    assert not await works(client, old["token"])


# --- shortening the expiry ------------------------------------------------------------------------


async def test_an_expiry_can_be_shortened_and_takes_effect_on_the_cached_key(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    created = await create_key(client, tenant.auth, expire=30 * ONE_DAY)
    assert await works(client, created["token"])
    sooner = clock.now() + timedelta(hours=2)
    response = await post(client, tenant, created["id"], "expire", tm_expire=fmt(sooner))
    assert response.status_code == 200, response.text
    assert response.json()["tm_expire"] == fmt(sooner)
    assert response.json()["tm_update"] == fmt(clock.now())
    clock.advance(2 * 3600 - 1)
    assert await works(client, created["token"])
    clock.advance(1)
    assert not await works(client, created["token"])
    types = [event["type"] for event in await events_of(services, tenant)]
    assert types[-1] == "accesskey_updated"


async def test_an_expiry_is_never_lengthened(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    created = await create_key(client, tenant.auth, expire=ONE_DAY)
    later = parse(created["tm_expire"]) + timedelta(microseconds=1)
    response = await post(client, tenant, created["id"], "expire", tm_expire=fmt(later))
    assert "rotate" in assert_error(response, 400, "INVALID_ARGUMENT", "EXPIRE_NOT_SHORTER")
    past = clock.now() - timedelta(seconds=1)
    response = await post(client, tenant, created["id"], "expire", tm_expire=fmt(past))
    assert_error(response, 400, "INVALID_ARGUMENT", "EXPIRE_IN_THE_PAST")
    for bad in ("tomorrow", "2026-12-01 10:15:30", 86_400, None):
        response = await post(client, tenant, created["id"], "expire", tm_expire=bad)
        assert response.status_code == 400, (bad, response.text)
    same = await post(client, tenant, created["id"], "expire", tm_expire=created["tm_expire"])
    assert same.status_code == 200
    assert same.json()["tm_update"] is None  # nothing changed
    current = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert current.json()["tm_expire"] == created["tm_expire"]


# --- expand ---------------------------------------------------------------------------------------


async def test_reading_shows_voipbins_fields_unless_more_is_asked_for(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    created = await create_key(client, tenant.auth)
    plain = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert_accesskey_shape(plain.json())
    for item in (await client.get(KEYS, headers=tenant.auth)).json()["result"]:
        assert_accesskey_shape(item)

    only = await client.get(
        key_url(created["id"]), params={"expand": "tm_last_used"}, headers=tenant.auth
    )
    assert set(only.json()) == ACCESSKEY_FIELDS | {"tm_last_used"}
    assert only.json()["tm_last_used"] is None

    clock.advance(10)
    assert await works(client, created["token"])
    await services.usage.flush()
    listed = await client.get(
        KEYS, params={"expand": "tm_last_used,tm_disable"}, headers=tenant.auth
    )
    item = next(item for item in listed.json()["result"] if item["id"] == created["id"])
    assert set(item) == ACCESSKEY_FIELDS | {"tm_last_used", "tm_disable"}
    assert item["tm_last_used"] == fmt(clock.now())
    everything = await client.get(
        key_url(created["id"]), params={"expand": "all"}, headers=tenant.auth
    )
    assert set(everything.json()) == EXPANDED_FIELDS


@pytest.mark.parametrize("value", ["token", "tm_last_used,secret", "password"])
async def test_an_unknown_expand_name_is_400(
    client: httpx.AsyncClient, tenant: Tenant, value: str
) -> None:
    response = await client.get(KEYS, params={"expand": value}, headers=tenant.auth)
    message = assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_PARAMETER")
    assert "tm_last_used" in message
    response = await client.get(
        key_url(uuid.uuid4()), params={"expand": value}, headers=tenant.auth
    )
    assert response.status_code == 400


async def test_gateway_verification_follows_disable_rotation_and_expiry(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    async def verified(token: str) -> int:
        response = await client.get(
            "/auth/verify", headers={"X-Original-URI": f"/v1.0/calls?accesskey={token}"}
        )
        return response.status_code

    disabled = await create_key(client, tenant.auth)
    assert await verified(disabled["token"]) == 200
    await post(client, tenant, disabled["id"], "disable")
    assert await verified(disabled["token"]) == 401
    await post(client, tenant, disabled["id"], "enable")
    assert await verified(disabled["token"]) == 200

    old = await create_key(client, tenant.auth)
    assert await verified(old["token"]) == 200
    new = (await post(client, tenant, old["id"], "rotate", grace=60)).json()
    assert await verified(new["token"]) == 200
    assert await verified(old["token"]) == 200
    clock.advance(60)
    assert await verified(old["token"]) == 401
    assert await verified(new["token"]) == 200
