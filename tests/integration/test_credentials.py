"""Contract section 2: where credentials come from, precedence, and refusals."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from tests.factories import OPERATOR, Factory, bearer, fake_token, login
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    Tenant,
    assert_error,
    cookie,
    key_url,
    make_jwt,
    without_request_id,
)

Request = dict[str, Any]

# --- where a credential can be ------------------------------------------------------------

SOURCES = (
    "cookie_token",
    "query_token",
    "bearer_jwt",
    "cookie_accesskey",
    "query_accesskey",
    "bearer_accesskey",
)
SESSION_SOURCES = SOURCES[:3]


def place(source: str, value: str) -> Request:
    """httpx request arguments carrying ``value`` in ``source``."""
    if source == "cookie_token":
        return {"headers": cookie(token=value)}
    if source == "query_token":
        return {"params": {"token": value}}
    if source in ("bearer_jwt", "bearer_accesskey"):
        return {"headers": bearer(value)}
    if source == "cookie_accesskey":
        return {"headers": cookie(accesskey=value)}
    if source == "query_accesskey":
        return {"params": {"accesskey": value}}
    raise AssertionError(source)


def merge(*parts: Request) -> Request:
    merged: Request = {"headers": {}, "params": {}}
    for part in parts:
        for name in ("headers", "params"):
            for key, value in part.get(name, {}).items():
                if key == "Cookie" and "Cookie" in merged[name]:
                    merged[name][key] = f"{merged[name][key]}; {value}"
                else:
                    assert key not in merged[name], f"{key} given twice"
                    merged[name][key] = value
    return merged


def session_for(tenant: Tenant, services: Services) -> str:
    return make_jwt(tenant.agent_id, tenant.customer.id, services.clock.now())


def credential_for(source: str, tenant: Tenant, services: Services) -> str:
    return session_for(tenant, services) if source in SESSION_SOURCES else tenant.key


def invalid_for(source: str) -> str:
    # A well-formed but unknown value of the right kind for the slot.
    return "eyJ" + "garbage.not.a-jwt" if source in SESSION_SOURCES else fake_token("Q")


async def whoami(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    return await client.get("/v1.0/customer", **request)


# --- each source works ------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
async def test_each_credential_source_authenticates(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, source: str
) -> None:
    value = credential_for(source, tenant, services)
    response = await whoami(client, place(source, value))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.id
    listed = await client.get(KEYS, **place(source, value))
    assert listed.status_code == 200, listed.text


@pytest.mark.parametrize("source", SESSION_SOURCES)
async def test_token_from_login_works_in_each_session_source(
    client: httpx.AsyncClient, tenant: Tenant, source: str
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    response = await whoami(client, place(source, token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.id


async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await whoami(client, {"headers": {"Authorization": f"bearer {tenant.key}"}})
    assert response.status_code == 200, response.text


async def test_bearer_with_accesskey_prefix_is_an_accesskey_not_a_jwt(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, other: Tenant
) -> None:
    # A vb_ bearer value sits at the lowest precedence: an accesskey cookie beats it,
    # which would not be so if it were taken for a session token.
    request = merge(place("cookie_accesskey", other.key), place("bearer_accesskey", tenant.key))
    response = await whoami(client, request)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == other.id
    # And a JWT bearer beats the accesskey cookie.
    jwt_first = merge(
        place("bearer_jwt", session_for(tenant, services)), place("cookie_accesskey", other.key)
    )
    response = await whoami(client, jwt_first)
    assert response.json()["id"] == tenant.id


# --- precedence ----------------------------------------------------------------------------

PAIRS = [
    (first, second)
    for first, second in itertools.combinations(SOURCES, 2)
    if {first, second} != {"bearer_jwt", "bearer_accesskey"}
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_precedence_first_present_credential_is_used(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    other: Tenant,
    first: str,
    second: str,
) -> None:
    winner = place(first, credential_for(first, tenant, services))
    loser = place(second, credential_for(second, other, services))
    response = await whoami(client, merge(winner, loser))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.id


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_invalid_higher_precedence_credential_is_not_skipped(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, first: str, second: str
) -> None:
    request = merge(
        place(first, invalid_for(first)), place(second, credential_for(second, tenant, services))
    )
    assert_error(await whoami(client, request), 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_invalid_lower_precedence_credential_is_ignored(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, first: str, second: str
) -> None:
    request = merge(
        place(first, credential_for(first, tenant, services)), place(second, invalid_for(second))
    )
    response = await whoami(client, request)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.id


async def test_invalid_token_cookie_beats_valid_accesskey_query(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(
        KEYS, headers=cookie(token="not-a-jwt"), params={"accesskey": tenant.key}
    )
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_valid_token_query_beats_invalid_accesskey(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    response = await client.get(KEYS, params={"token": token, "accesskey": fake_token()})
    assert response.status_code == 200, response.text


# --- empty values count as absent ---------------------------------------------------------


@pytest.mark.parametrize(
    "empty",
    [
        {"headers": cookie(token="")},
        {"params": {"token": ""}},
        {"headers": {"Authorization": "Bearer "}},
        {"headers": {"Authorization": "Bearer"}},
        {"headers": cookie(accesskey="")},
    ],
    ids=["cookie-token", "query-token", "bearer-space", "bearer-bare", "cookie-accesskey"],
)
async def test_empty_values_are_absent(
    client: httpx.AsyncClient, tenant: Tenant, empty: Request
) -> None:
    alone = await whoami(client, empty)
    assert_error(alone, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    with_key = await whoami(client, merge(empty, place("query_accesskey", tenant.key)))
    assert with_key.status_code == 200, with_key.text


async def test_empty_accesskey_query_is_absent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1.0/customer?accesskey=&token=")
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    response = await client.get("/v1.0/customer?token=", headers=tenant.auth)
    assert response.status_code == 200, response.text


# --- no credential ---------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/v1.0/customer"),
    ("GET", KEYS),
    ("POST", KEYS),
    ("GET", key_url(uuid.UUID(int=7))),
    ("PUT", key_url(uuid.UUID(int=7))),
    ("DELETE", key_url(uuid.UUID(int=7))),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_no_credential_is_authentication_required(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"expire": 86_400} if method in ("POST", "PUT") else None
    response = await client.request(method, path, json=body)
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_invalid_credential_is_refused_on_every_endpoint(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"expire": 86_400} if method in ("POST", "PUT") else None
    response = await client.request(method, path, json=body, headers=bearer(fake_token()))
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


# --- every refusal looks the same -------------------------------------------------------------


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["cid"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def _alg_none(agent_id: object, customer_id: object, clock: FrozenClock) -> str:
    now = clock.now()
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    claims = {
        "sub": str(agent_id),
        "cid": str(customer_id),
        "iss": "keyplane",
        "aud": "keyplane",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=1)).timestamp()),
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{payload}."


BadJwt = Callable[[Tenant, FrozenClock], str]

BAD_JWTS: dict[str, BadJwt] = {
    "garbage": lambda t, c: "not-a-jwt",
    "three-garbage-parts": lambda t, c: "eyJhbGciOi.eyJzdWIi.c2ln",
    "bad-signature": lambda t, c: make_jwt(
        t.agent_id, t.customer.id, c.now(), secret="another-secret-" + "y" * 40
    ),
    "alg-none": lambda t, c: _alg_none(t.agent_id, t.customer.id, c),
    "alg-hs384": lambda t, c: make_jwt(t.agent_id, t.customer.id, c.now(), algorithm="HS384"),
    "tampered": lambda t, c: _tamper(make_jwt(t.agent_id, t.customer.id, c.now())),
    "expired": lambda t, c: make_jwt(
        t.agent_id, t.customer.id, c.now() - timedelta(days=8), lifetime=timedelta(days=7)
    ),
    "iat-in-future": lambda t, c: make_jwt(
        t.agent_id, t.customer.id, c.now() + timedelta(days=1), lifetime=timedelta(days=1)
    ),
    "wrong-iss": lambda t, c: make_jwt(t.agent_id, t.customer.id, c.now(), iss="voipbin"),
    "wrong-aud": lambda t, c: make_jwt(t.agent_id, t.customer.id, c.now(), aud="other"),
    "no-exp": lambda t, c: make_jwt(t.agent_id, t.customer.id, c.now(), drop=("exp",)),
    "no-sub": lambda t, c: make_jwt(t.agent_id, t.customer.id, c.now(), drop=("sub",)),
    "sub-not-uuid": lambda t, c: make_jwt("admin", t.customer.id, c.now()),
    "unknown-agent": lambda t, c: make_jwt(uuid.uuid4(), t.customer.id, c.now()),
    "other-customer": lambda t, c: make_jwt(t.agent_id, uuid.uuid4(), c.now()),
    "accesskey-as-token": lambda t, c: t.key,
}


@pytest.mark.parametrize("source", SESSION_SOURCES)
async def test_bad_session_tokens_are_refused_identically(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    services: Services,
    tenant: Tenant,
    source: str,
) -> None:
    good = make_jwt(tenant.agent_id, tenant.customer.id, clock.now())
    control = await whoami(client, place(source, good))
    assert control.status_code == 200, control.text  # the builder makes valid tokens
    bodies = []
    for name, build in BAD_JWTS.items():
        value = build(tenant, clock)
        if source == "bearer_jwt" and value.startswith("vb_"):
            continue  # a vb_ bearer is an access key by definition
        response = await whoami(client, place(source, value))
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        assert value not in response.text, name
        bodies.append((name, without_request_id(response)))
    assert len({json.dumps(body, sort_keys=True) for _, body in bodies}) == 1, bodies


@pytest.mark.parametrize("source", ["cookie_accesskey", "query_accesskey", "bearer_accesskey"])
async def test_bad_accesskeys_are_refused_identically(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    services: Services,
    factory: Factory,
    tenant: Tenant,
    source: str,
) -> None:
    expired, expired_token = await factory.accesskey(tenant.customer, expire=86_400)
    deleted, deleted_token = await factory.accesskey(tenant.customer)
    await services.accesskeys.delete(OPERATOR, deleted.id)
    clock.advance(86_400)  # the one-day key reaches tm_expire: no longer in the future
    assert clock.now() == expired.tm_expire
    values = {
        "unknown": fake_token("Z"),
        "short": "vb" + "_" + "A" * 31,
        "long": "vb" + "_" + "A" * 33,
        "bad-char": "vb" + "_" + "A" * 31 + "-",
        "no-prefix": "A" * 35,
        "wrong-prefix": "vc" + "_" + "A" * 32,
        "last-char-changed": tenant.key[:-1] + ("a" if tenant.key[-1] != "a" else "b"),
        "expired": expired_token,
        "deleted": deleted_token,
        "jwt-as-accesskey": make_jwt(tenant.agent_id, tenant.customer.id, clock.now()),
    }
    control = await whoami(client, place(source, tenant.key))
    assert control.status_code == 200, control.text
    bodies = set()
    for name, value in values.items():
        if source == "bearer_accesskey" and not value.startswith("vb_"):
            continue  # not an access key in the bearer slot; covered by the session tests
        response = await whoami(client, place(source, value))
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        assert value not in response.text, name
        bodies.add(json.dumps(without_request_id(response), sort_keys=True))
    assert len(bodies) == 1, bodies


async def test_session_and_accesskey_refusals_share_one_message(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    as_key = await whoami(client, place("query_accesskey", fake_token()))
    as_jwt = await whoami(client, place("bearer_jwt", "not-a-jwt"))
    assert without_request_id(as_key) == without_request_id(as_jwt)


# --- lifetimes -----------------------------------------------------------------------------------


async def test_accesskey_works_until_just_before_tm_expire(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    key, token = await factory.accesskey(tenant.customer, expire=86_400)
    clock.set(key.tm_expire - timedelta(microseconds=1))
    assert (await whoami(client, {"headers": bearer(token)})).status_code == 200
    clock.set(key.tm_expire)
    response = await whoami(client, {"headers": bearer(token)})
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_session_expires_after_seven_days(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    clock.advance(7 * 86_400 - 1)
    assert (await whoami(client, {"headers": bearer(token)})).status_code == 200
    clock.advance(1)
    response = await whoami(client, {"headers": bearer(token)})
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_deleted_agent_session_stops_working(
    client: httpx.AsyncClient, clock: FrozenClock, services: Services, tenant: Tenant
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    assert (await whoami(client, {"headers": bearer(token)})).status_code == 200
    await services.customers.delete_agent(OPERATOR, tenant.agent_id)
    for source in SESSION_SOURCES:
        response = await whoami(client, place(source, token))
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_deleted_key_stops_authenticating_at_once(
    client: httpx.AsyncClient, factory: Factory, tenant: Tenant
) -> None:
    key, token = await factory.accesskey(tenant.customer)
    auth = bearer(token)
    assert (await whoami(client, {"headers": auth})).status_code == 200
    deleted = await client.delete(key_url(key.id), headers=tenant.auth)
    assert deleted.status_code == 200, deleted.text
    for source in ("cookie_accesskey", "query_accesskey", "bearer_accesskey"):
        response = await whoami(client, place(source, token))
        assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
