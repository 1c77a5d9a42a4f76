"""A restricted key cannot undo an admin's containment: it changes only keys within its own
restrictions, and makes, renews or re-dates no key that outlives itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.accesskeys import MAX_EXPIRE
from keyplane.services.container import Services
from tests.factories import ONE_DAY, ONE_YEAR, bearer, login
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    Tenant,
    assert_error,
    create_key,
    fmt,
    key_url,
    parse,
    quick_agent,
)

EVERY_METHOD = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# The brief's key: it may create keys, and nothing else.
CREATE_ONLY = [{"methods": ["POST"], "path_prefix": "/v1.0/accesskeys"}]
KEY_ADMIN = [{"methods": EVERY_METHOD, "path_prefix": "/v1.0/accesskeys"}]
LOOPBACK = ["127.0.0.0/8"]  # the test client's address
ACTIONS = ["update", "delete", "disable", "enable", "expire", "rotate"]


async def act(
    client: httpx.AsyncClient, auth: dict[str, str], target: dict[str, Any], action: str
) -> httpx.Response:
    """One change of ``target`` by the holder of ``auth``."""
    url = key_url(target["id"])
    if action == "update":
        return await client.put(url, json={"name": "taken over"}, headers=auth)
    if action == "delete":
        return await client.delete(url, headers=auth)
    body: dict[str, Any] = {}
    if action == "expire":
        body["tm_expire"] = fmt(parse(target["tm_expire"]) - timedelta(hours=1))
    return await client.post(f"{url}/{action}", json=body, headers=auth)


async def current(client: httpx.AsyncClient, tenant: Tenant, key_id: str) -> dict[str, Any]:
    response = await client.get(key_url(key_id), params={"expand": "all"}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


# --- 3. acting on keys: only those within the caller's restrictions ------------------------------


async def test_a_restricted_key_may_not_enable_a_key_an_admin_disabled(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    contained = await create_key(client, tenant.auth)
    response = await client.post(f"{key_url(contained['id'])}/disable", headers=tenant.auth)
    assert response.status_code == 200, response.text
    maker = bearer((await create_key(client, tenant.auth, scopes=CREATE_ONLY))["token"])
    response = await client.post(f"{key_url(contained['id'])}/enable", headers=maker)
    message = assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "scopes are within its own" in message
    assert (await current(client, tenant, contained["id"]))["tm_disable"] is not None
    # Neither may it disable or shorten an unrestricted key.
    plain = await create_key(client, tenant.auth, expire=30 * ONE_DAY)
    for action in ("disable", "expire"):
        response = await act(client, maker, plain, action)
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    after = await current(client, tenant, plain["id"])
    assert (after["tm_disable"], after["tm_expire"]) == (None, plain["tm_expire"])
    # Creating within its own scopes stays allowed.
    assert (await create_key(client, maker, scopes=CREATE_ONLY))["scopes"] == CREATE_ONLY


@pytest.mark.parametrize("action", ACTIONS)
async def test_a_scoped_key_changes_only_keys_within_its_scopes(
    client: httpx.AsyncClient, tenant: Tenant, action: str
) -> None:
    caller = bearer((await create_key(client, tenant.auth, scopes=KEY_ADMIN))["token"])
    wider = await create_key(client, tenant.auth)
    narrower_scopes = [{"methods": ["GET"], "path_prefix": "/v1.0/accesskeys/"}]
    narrower = await create_key(client, tenant.auth, scopes=narrower_scopes)
    before = await current(client, tenant, wider["id"])
    if action == "enable":
        await act(client, tenant.auth, wider, "disable")
        await act(client, tenant.auth, narrower, "disable")
        before = await current(client, tenant, wider["id"])
    refused = await act(client, caller, wider, action)
    message = assert_error(refused, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "restricted access key" in message
    assert await current(client, tenant, wider["id"]) == before  # untouched
    allowed = await act(client, caller, narrower, action)
    assert allowed.status_code == 200, allowed.text
    # Reading is not changing: the wider key stays visible to the restricted one.
    assert (await client.get(key_url(wider["id"]), headers=caller)).status_code == 200


@pytest.mark.parametrize("action", ACTIONS)
async def test_an_allowlisted_key_changes_only_keys_within_its_allowlist(
    client: httpx.AsyncClient, tenant: Tenant, action: str
) -> None:
    caller = bearer((await create_key(client, tenant.auth, allowed_networks=LOOPBACK))["token"])
    anywhere = await create_key(client, tenant.auth)
    inside = await create_key(client, tenant.auth, allowed_networks=["127.0.0.1/32"])
    if action == "enable":
        await act(client, tenant.auth, anywhere, "disable")
        await act(client, tenant.auth, inside, "disable")
    before = await current(client, tenant, anywhere["id"])
    refused = await act(client, caller, anywhere, action)
    message = assert_error(refused, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "allowlist" in message
    assert await current(client, tenant, anywhere["id"]) == before
    allowed = await act(client, caller, inside, action)
    assert allowed.status_code == 200, allowed.text


async def test_a_restricted_key_still_acts_on_itself(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, scopes=KEY_ADMIN, allowed_networks=LOOPBACK)
    me = bearer(created["token"])
    renamed = await client.put(key_url(created["id"]), json={"name": "me"}, headers=me)
    assert renamed.status_code == 200, renamed.text
    disabled = await client.post(f"{key_url(created['id'])}/disable", headers=me)
    assert disabled.status_code == 200, disabled.text


# --- 3. expiry: nothing a restricted key makes outlives it ----------------------------------------


async def test_a_one_day_restricted_key_may_not_make_a_key_that_outlives_it(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    for restrictions in ({"scopes": KEY_ADMIN}, {"allowed_networks": LOOPBACK}):
        day = await create_key(client, tenant.auth, expire=ONE_DAY, **restrictions)
        auth = bearer(day["token"])
        response = await client.post(
            KEYS, json={"expire": MAX_EXPIRE, **restrictions}, headers=auth
        )
        message = assert_error(response, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
        assert "at most 86400 seconds" in message
        assert day["tm_expire"] in message
        child = await create_key(client, auth, expire=ONE_DAY, **restrictions)
        assert child["tm_expire"] == day["tm_expire"]  # no later: allowed
    clock.advance(3600)
    response = await client.post(KEYS, json={"expire": ONE_DAY, **restrictions}, headers=auth)
    message = assert_error(response, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
    assert "less than one day" in message


async def test_an_unrestricted_key_makes_keys_of_any_lifetime_as_voipbin_keys_do(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    day = await create_key(client, tenant.auth, expire=ONE_DAY)
    made = await create_key(client, bearer(day["token"]), expire=MAX_EXPIRE)
    assert parse(made["tm_expire"]) == clock.now() + timedelta(seconds=MAX_EXPIRE)


async def test_a_restricted_key_may_not_give_a_key_a_later_expiry_than_its_own(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    day = await create_key(client, tenant.auth, expire=ONE_DAY, scopes=KEY_ADMIN)
    auth = bearer(day["token"])
    day_end = clock.now() + timedelta(seconds=ONE_DAY)
    target = await create_key(client, tenant.auth, expire=ONE_YEAR, scopes=KEY_ADMIN)
    url = f"{key_url(target['id'])}/expire"
    later = await client.post(
        url, json={"tm_expire": fmt(day_end + timedelta(days=1))}, headers=auth
    )
    message = assert_error(later, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
    assert fmt(day_end) in message
    unchanged = await client.post(url, json={"tm_expire": target["tm_expire"]}, headers=auth)
    assert_error(unchanged, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
    assert (await current(client, tenant, target["id"]))["tm_expire"] == target["tm_expire"]
    sooner = await client.post(url, json={"tm_expire": fmt(day_end)}, headers=auth)
    assert sooner.status_code == 200, sooner.text
    assert sooner.json()["tm_expire"] == fmt(day_end)


async def test_a_key_rotated_by_a_restricted_key_expires_no_later_than_that_key(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    day_key = await create_key(client, tenant.auth, expire=ONE_DAY, scopes=KEY_ADMIN)
    day_token = day_key["token"]
    day_end = fmt(clock.now() + timedelta(seconds=ONE_DAY))
    target = await create_key(client, tenant.auth, expire=ONE_YEAR, scopes=KEY_ADMIN)
    clock.advance(60)
    rotated = await client.post(f"{key_url(target['id'])}/rotate", headers=bearer(day_token))
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["tm_expire"] == day_end
    stored = await current(client, tenant, rotated.json()["id"])
    assert stored["tm_expire"] == day_end
    # The rotating key's own replacement is bounded the same way: it cannot renew itself.
    itself = await client.post(f"{key_url(day_key['id'])}/rotate", headers=bearer(day_token))
    assert itself.status_code == 200, itself.text
    assert itself.json()["tm_expire"] == day_end


async def test_sessions_and_the_operator_are_not_bounded_by_a_key(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    agent = await quick_agent(services, tenant.customer)
    session = bearer(await login(client, agent.username, PASSWORD))
    made = await create_key(client, session, expire=MAX_EXPIRE)
    assert parse(made["tm_expire"]) == clock.now() + timedelta(seconds=MAX_EXPIRE)
    clock.advance(60)
    rotated = await client.post(f"{key_url(made['id'])}/rotate", headers=session)
    assert parse(rotated.json()["tm_expire"]) == clock.now() + timedelta(seconds=MAX_EXPIRE)
