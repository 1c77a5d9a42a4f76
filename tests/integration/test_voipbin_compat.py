"""VoIPBIN's own clients work unchanged: each point where they once failed, over HTTP.

The facts come from VoIPBIN's public code (bin-api-manager, bin-customer-manager,
voipbin/cli, voipbin/voipbin-go); ``voipbin_schema.json`` is VoIPBIN's published
schema of its objects, and every response here is validated against it.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import jsonschema
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from tests.conftest import replica
from tests.factories import OPERATOR, Factory, bearer, login
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    Tenant,
    assert_error,
    create_key,
    key_url,
    parse,
    quick_agent,
)

SCHEMA = json.loads((Path(__file__).parent / "voipbin_schema.json").read_text())
NIL = "00000000-0000-0000-0000-000000000000"


def assert_voipbin(body: object, definition: str) -> None:
    """``body`` is what a VoIPBIN client reading ``definition`` expects."""
    schema = {"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]}
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, [f"{list(error.path)}: {error.message}" for error in errors]


def assert_voipbin_error(response: httpx.Response, http_status: int, reason: str) -> None:
    assert response.status_code == http_status, response.text
    assert_voipbin(response.json(), "ErrorResponse")
    assert response.json()["error"]["reason"] == reason


# --- the schema itself can fail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "definition"),
    [
        ({"result": [], "next_page_token": None}, "AccesskeyList"),
        ({"result": []}, "AccesskeyList"),
        ({"id": NIL, "email": "", "billing_account_id": NIL}, "CustomerManagerCustomer"),
        ({"error": {"status": "NOT_FOUND", "reason": "x", "message": ""}}, "ErrorResponse"),
        ({"id": "not-a-uuid", "customer_id": NIL}, "CustomerManagerAccesskey"),
    ],
)
def test_the_schema_refuses_what_broke_voipbin_clients(body: object, definition: str) -> None:
    with pytest.raises(AssertionError):
        assert_voipbin(body, definition)


# --- 1. next_page_token is "" on an empty page ----------------------------------------------------


async def test_empty_page_has_an_empty_string_token(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await quick_agent(services, customer)
    auth = bearer(await login(client, agent.username, PASSWORD))
    response = await client.get(KEYS, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": [], "next_page_token": ""}
    assert '"next_page_token":""' in response.text.replace(" ", "")
    assert_voipbin(response.json(), "AccesskeyList")


async def test_paging_the_voipbin_go_way_ends_on_the_empty_page(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    """voipbin-go's example dereferences ``*NextPageToken`` on every page, the last included,
    and a loop over it stops when ``Result`` is empty."""
    for index in range(4):
        clock.advance(1)
        await factory.accesskey(tenant.customer, name=f"k{index}")
    seen: list[str] = []
    page_token: str | None = None
    for _ in range(10):
        params = {"page_size": "2"}
        if page_token is not None:
            params["page_token"] = page_token
        response = await client.get(KEYS, params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert_voipbin(body, "AccesskeyList")
        token = body["next_page_token"]  # *tmp.JSON200.NextPageToken: never nil
        assert isinstance(token, str)
        if not body["result"]:
            assert token == ""
            break
        seen.extend(item["id"] for item in body["result"])
        page_token = token
    else:
        pytest.fail("paging did not end")
    assert len(seen) == len(set(seen)) == 5  # four keys and the tenant's own


# --- 2. GET /v1.0/me ------------------------------------------------------------------------------


@pytest.mark.parametrize("permission", [16, 32, 64, 1])
async def test_me_for_a_session_is_the_agent(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: int
) -> None:
    agent = await quick_agent(services, tenant.customer, permission=permission)
    session = await login(client, agent.username, PASSWORD)
    response = await client.get("/v1.0/me", headers=bearer(session))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "customer_id",
        "username",
        "name",
        "detail",
        "permission",
        "tm_create",
        "tm_update",
        "tm_delete",
    }
    assert body["id"] == str(agent.id)
    assert body["customer_id"] == tenant.id
    assert body["username"] == agent.username
    assert body["permission"] == permission
    assert body["tm_delete"] is None
    assert "argon2" not in response.text
    assert "password" not in response.text


async def test_me_for_an_access_key_says_who_the_caller_is(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, name="cli")
    for request in (
        {"headers": bearer(created["token"])},
        {"params": {"accesskey": created["token"]}},
        {"headers": {"Cookie": f"accesskey={created['token']}"}},
    ):
        response = await client.get("/v1.0/me", **request)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "type": "accesskey",
            "id": created["id"],
            "customer_id": tenant.id,
            "name": "cli",
            "token_prefix": created["token_prefix"],
            "permission": 32,
            "tm_expire": created["tm_expire"],
        }
        assert created["token"] not in response.text


async def test_me_needs_a_valid_credential(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert_error(await client.get("/v1.0/me"), 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    created = await create_key(client, tenant.auth)
    await client.delete(key_url(created["id"]), headers=tenant.auth)
    response = await client.get("/v1.0/me", headers=bearer(created["token"]))
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


# --- 3. a deleted key of the caller's customer is 409 ---------------------------------------------


async def test_deleted_own_key_is_state_invalid_and_others_deleted_key_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    mine = await create_key(client, tenant.auth)
    theirs = await create_key(client, other.auth)
    await client.delete(key_url(mine["id"]), headers=tenant.auth)
    await client.delete(key_url(theirs["id"]), headers=other.auth)
    for method in ("GET", "PUT", "DELETE"):
        own = await client.request(method, key_url(mine["id"]), json={}, headers=tenant.auth)
        assert_voipbin_error(own, 409, "STATE_INVALID")
        assert own.json()["error"]["status"] == "FAILED_PRECONDITION"
        foreign = await client.request(method, key_url(theirs["id"]), json={}, headers=tenant.auth)
        assert_voipbin_error(foreign, 404, "RESOURCE_NOT_FOUND")
        missing = await client.request(method, key_url(uuid.uuid4()), json={}, headers=tenant.auth)
        assert_voipbin_error(missing, 404, "RESOURCE_NOT_FOUND")
        assert foreign.json()["error"]["message"] == missing.json()["error"]["message"]


# --- 4. nobody reaches another customer's keys ----------------------------------------------------


@pytest.mark.parametrize("permission", [1, 1 | 32, 65535])
async def test_project_super_admin_gets_404_for_other_customers_keys(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, other: Tenant, permission: int
) -> None:
    theirs = await create_key(client, other.auth, name="theirs")
    agent = await quick_agent(services, tenant.customer, permission=permission)
    auth = bearer(await login(client, agent.username, PASSWORD))
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(
            method, key_url(theirs["id"]), json={"name": "taken"}, headers=auth
        )
        assert_voipbin_error(response, 404, "RESOURCE_NOT_FOUND")
    after = await client.get(key_url(theirs["id"]), headers=other.auth)
    assert after.json()["name"] == "theirs"
    assert after.json()["tm_delete"] is None


# --- 5. expire ------------------------------------------------------------------------------------


@pytest.mark.parametrize("expire", [86_400, 315_360_000, 2_147_483_647])
async def test_every_int32_from_one_day_up_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant, expire: int
) -> None:
    response = await client.post(KEYS, json={"name": "n", "expire": expire}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_voipbin(body, "CustomerManagerAccesskey")
    assert parse(body["tm_expire"]) - parse(body["tm_create"]) == timedelta(seconds=expire)


@pytest.mark.parametrize("expire", [86_399, 0, -1, 2_147_483_648, None, "86400", 86_400.5])
async def test_a_bad_expire_is_invalid_argument(
    client: httpx.AsyncClient, tenant: Tenant, expire: object
) -> None:
    response = await client.post(KEYS, json={"expire": expire}, headers=tenant.auth)
    assert_voipbin_error(response, 400, "INVALID_ARGUMENT")
    assert "86400" in response.json()["error"]["message"]


async def test_an_operator_maximum_is_its_own_error(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, accesskey_max_expire=400 * 86_400) as node:
        factory = Factory(node.services)
        token = await factory.identity_token(await factory.customer())
        async with node.client() as http:
            response = await http.post(KEYS, json={"expire": 401 * 86_400}, headers=bearer(token))
            assert_voipbin_error(response, 400, "EXPIRE_ABOVE_MAXIMUM")
            assert "34560000" in response.json()["error"]["message"]
            ok = await http.post(KEYS, json={"expire": 400 * 86_400}, headers=bearer(token))
            assert ok.status_code == 200, ok.text


# --- 6. login: 400 on failure, a token cookie on success ------------------------------------------


async def test_failed_and_malformed_logins_are_400_in_the_envelope(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    wrong = await client.post("/auth/login", json={"username": tenant.username, "password": "x"})
    assert_voipbin_error(wrong, 400, "INVALID_CREDENTIALS")
    assert "www-authenticate" not in wrong.headers
    malformed = await client.post("/auth/login", content=b"{not json")
    assert_voipbin_error(malformed, 400, "INVALID_JSON_BODY")


async def test_login_sets_voipbins_token_cookie(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    response = await client.post(
        "/auth/login", json={"username": tenant.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert_voipbin(response.json(), "LoginResponse")
    token = response.json()["token"]
    (header,) = response.headers.get_list("set-cookie")
    name_value, *attributes = [part.strip() for part in header.split(";")]
    assert name_value == f"token={token}"
    flags = {attribute.split("=", 1)[0].lower(): attribute for attribute in attributes}
    assert set(flags) == {"httponly", "secure", "samesite", "path", "max-age"}
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/"
    assert flags["max-age"] == f"Max-Age={services.settings.session_ttl}"
    # A browser sends it back, and it authenticates.
    me = await client.get("/v1.0/me", headers={"Cookie": f"token={token}"})
    assert me.status_code == 200, me.text
    assert me.json()["username"] == tenant.username


async def test_login_cookie_without_secure_for_plain_http_development(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with replica(tmp_path, database_url, clock, session_cookie_secure=False) as node:
        factory = Factory(node.services)
        agent = await quick_agent(node.services, await factory.customer())
        async with node.client() as http:
            response = await http.post(
                "/auth/login", json={"username": agent.username, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            cookie = response.headers["set-cookie"].lower()
            assert "secure" not in cookie
            assert "httponly" in cookie


# --- 7. GET /v1.0/customer ------------------------------------------------------------------------


async def test_customer_has_voipbins_fields_and_leaves_out_empty_strings(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer(name="Acme")  # email set, detail and webhook empty
    token = await factory.identity_token(customer)
    response = await client.get("/v1.0/customer", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_voipbin(body, "CustomerManagerCustomer")
    assert body["billing_account_id"] == NIL
    assert body["metadata"] == {"rtp_debug": False}
    assert body["email_verified"] is False
    assert body["status"] == "active"
    assert body["identity_verification_status"] == "none"
    assert body["tm_deletion_scheduled"] is None
    for empty in ("detail", "webhook_method", "webhook_uri"):
        assert empty not in body
    no_email = await services.customers.create_customer(OPERATOR, name="No Mail", email="")
    other = await client.get(
        "/v1.0/customer", headers=bearer(await factory.identity_token(no_email))
    )
    assert "email" not in other.json()
    assert_voipbin(other.json(), "CustomerManagerCustomer")


# --- 8. request validation and reasons ------------------------------------------------------------


@pytest.mark.parametrize("size", ["abc", "1.5", "ten"])
async def test_page_size_that_is_not_an_integer_is_400(
    client: httpx.AsyncClient, tenant: Tenant, size: str
) -> None:
    response = await client.get(KEYS, params={"page_size": size}, headers=tenant.auth)
    assert_voipbin_error(response, 400, "INVALID_REQUEST_PARAMETER")


@pytest.mark.parametrize("size", ["0", "101", "-1", "99999"])
async def test_page_size_integer_out_of_range_means_100(
    client: httpx.AsyncClient, tenant: Tenant, factory: Factory, size: str
) -> None:
    for _ in range(100):  # with the tenant's own key: 101, one more than a page
        await factory.accesskey(tenant.customer)
    response = await client.get(KEYS, params={"page_size": size}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["result"]) == 100
    assert page["next_page_token"] != ""


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_nil_uuid_is_invalid_id(
    client: httpx.AsyncClient, tenant: Tenant, method: str
) -> None:
    response = await client.request(method, key_url(NIL), json={}, headers=tenant.auth)
    assert_voipbin_error(response, 400, "INVALID_ID")


async def test_rate_limit_reason_is_voipbins(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    limits = {"ratelimit_customer_per_second": 0.01, "ratelimit_customer_burst": 1}
    async with replica(tmp_path, database_url, clock, **limits) as node:
        factory = Factory(node.services)
        token = await factory.identity_token(await factory.customer())
        async with node.client() as http:
            assert (await http.get(KEYS, headers=bearer(token))).status_code == 200
            limited = await http.get(KEYS, headers=bearer(token))
            assert_voipbin_error(limited, 429, "RATE_LIMIT_EXCEEDED")
            assert int(limited.headers["Retry-After"]) >= 1


# --- 9. VoIPBIN's older cursors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        "%Y-%m-%dT%H:%M:%S.%fZ",
        "%Y-%m-%d %H:%M:%S.%f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%SZ",
    ],
)
async def test_voipbins_cursor_forms_are_accepted(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant, form: str
) -> None:
    keys = []
    for index in range(3):
        clock.advance(10)
        keys.append(await factory.accesskey(tenant.customer, name=f"k{index}"))
    newest = keys[-1][0]
    cursor = newest.tm_create.strftime(form)
    response = await client.get(KEYS, params={"page_token": cursor}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    ids = [item["id"] for item in response.json()["result"]]
    # Strictly older than the cursor: the newest key is not on the page, the older ones are.
    assert str(newest.id) not in ids
    assert ids[:2] == [str(keys[1][0].id), str(keys[0][0].id)]


# --- every object a VoIPBIN client reads ----------------------------------------------------------


async def test_every_response_matches_voipbins_schema(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    created = await client.post(
        KEYS, json={"name": "n", "detail": "d", "expire": 86_400}, headers=tenant.auth
    )
    assert_voipbin(created.json(), "CustomerManagerAccesskey")
    key_id = created.json()["id"]
    assert_voipbin(
        (await client.get(key_url(key_id), headers=tenant.auth)).json(), "CustomerManagerAccesskey"
    )
    updated = await client.put(key_url(key_id), json={"name": "m"}, headers=tenant.auth)
    assert_voipbin(updated.json(), "CustomerManagerAccesskey")
    listed = await client.get(KEYS, params={"page_size": "1"}, headers=tenant.auth)
    assert_voipbin(listed.json(), "AccesskeyList")
    deleted = await client.delete(key_url(key_id), headers=tenant.auth)
    assert_voipbin(deleted.json(), "CustomerManagerAccesskey")
    assert_voipbin(
        (await client.get("/v1.0/customer", headers=tenant.auth)).json(), "CustomerManagerCustomer"
    )
    errors = [
        await client.get(KEYS),
        await client.get(KEYS, headers=bearer("vb_" + "Q" * 32)),
        await client.get(key_url("nope"), headers=tenant.auth),
        await client.post(KEYS, content=b"[", headers=tenant.auth),
        await client.get("/v1.0/nothing", headers=tenant.auth),
    ]
    for response in errors:
        assert_voipbin(response.json(), "ErrorResponse")


async def test_lifecycle_features_leave_voipbins_default_responses_exact(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, clock: FrozenClock
) -> None:
    """Keys that were disabled, rotated, shortened and used still read exactly as VoIPBIN's;
    only ``?expand=`` adds fields, and VoIPBIN's schema would refuse those."""
    disabled = await create_key(client, tenant.auth, name="disabled")
    await client.post(f"{key_url(disabled['id'])}/disable", headers=tenant.auth)
    rotated = await create_key(client, tenant.auth, name="rotated")
    rotation = await client.post(
        f"{key_url(rotated['id'])}/rotate", json={"grace": 60}, headers=tenant.auth
    )
    shortened = await create_key(client, tenant.auth, name="shortened", expire=2 * 86_400)
    sooner = parse(shortened["tm_expire"]) - timedelta(days=1)
    await client.post(
        f"{key_url(shortened['id'])}/expire",
        json={"tm_expire": sooner.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        headers=tenant.auth,
    )
    await client.get("/v1.0/customer", headers=bearer(rotation.json()["token"]))
    await services.usage.flush()

    for key_id in (disabled["id"], rotated["id"], shortened["id"], rotation.json()["id"]):
        response = await client.get(key_url(key_id), headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert_voipbin(response.json(), "CustomerManagerAccesskey")
        updated = await client.put(key_url(key_id), json={"name": "x"}, headers=tenant.auth)
        assert_voipbin(updated.json(), "CustomerManagerAccesskey")
    listed = await client.get(KEYS, headers=tenant.auth)
    assert len(listed.json()["result"]) == 5
    assert_voipbin(listed.json(), "AccesskeyList")
    async with services.database.reader() as repos:
        for event in await repos.events.list_for_customer(tenant.customer.id):
            assert_voipbin(event["payload"], "CustomerManagerAccesskey")

    # The positive control: what ?expand= adds is beyond VoIPBIN's object.
    expanded = await client.get(
        key_url(disabled["id"]), params={"expand": "tm_disable"}, headers=tenant.auth
    )
    with pytest.raises(AssertionError):
        assert_voipbin(expanded.json(), "CustomerManagerAccesskey")
