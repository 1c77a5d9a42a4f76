"""Restricted keys over HTTP: scopes given at creation, enforced by the API and by
``/auth/verify`` (403 PERMISSION_DENIED), never more than the creator holds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from tests.factories import ACCESSKEY_FIELDS, bearer
from tests.integration.conftest import (
    ACCESSKEY_WITH_TOKEN_FIELDS,
    KEYS,
    Tenant,
    assert_error,
    create_key,
    key_url,
)

CALLS_ONLY = [{"methods": ["GET", "POST"], "path_prefix": "/v1.0/calls"}]
KEY_ADMIN = [{"methods": ["GET", "POST"], "path_prefix": "/v1.0/accesskeys"}]


async def verify(
    client: httpx.AsyncClient, token: str, method: str | None, uri: str
) -> httpx.Response:
    headers = {"X-Original-URI": uri, **bearer(token)}
    if method is not None:
        headers["X-Original-Method"] = method
    return await client.get("/auth/verify", headers=headers)


async def test_a_read_only_key_reads_and_is_refused_writes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, scopes="read_only")
    assert set(created) == ACCESSKEY_WITH_TOKEN_FIELDS | {"scopes"}
    assert created["scopes"] == [{"methods": ["GET", "HEAD", "OPTIONS"], "path_prefix": "/"}]
    auth = bearer(created["token"])
    assert (await client.get(KEYS, headers=auth)).status_code == 200
    assert (await client.get("/v1.0/customer", headers=auth)).status_code == 200
    refused = [
        await client.post(KEYS, json={"expire": 86_400}, headers=auth),
        await client.put(key_url(created["id"]), json={"name": "x"}, headers=auth),
        await client.delete(key_url(created["id"]), headers=auth),
        await client.post(f"{key_url(created['id'])}/disable", headers=auth),
    ]
    for response in refused:
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    still = await client.get(key_url(created["id"]), params={"expand": "scopes"}, headers=auth)
    assert still.json()["tm_delete"] is None
    assert still.json()["scopes"] == created["scopes"]


async def test_verify_applies_rules_to_the_original_method_and_path(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = (await create_key(client, tenant.auth, scopes=CALLS_ONLY))["token"]
    assert (await verify(client, token, "GET", "/v1.0/calls?page_size=1")).status_code == 200
    assert (await verify(client, token, "POST", "/v1.0/calls/7/hangup")).status_code == 200
    for method, uri in [
        ("DELETE", "/v1.0/calls/7"),
        ("GET", "/v1.0/callsign"),
        ("GET", "/v1.0/calls/../accesskeys"),
        ("GET", "/v1.0/calls/%2e%2e/accesskeys"),
        (None, "/v1.0/calls"),  # the method is unknown: a restricted key is refused
    ]:
        response = await verify(client, token, method, uri)
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        assert response.headers["x-keyplane-error"] == response.text
    # Traefik's header, and Envoy's path prefix with the original method.
    traefik = await client.get(
        "/auth/verify",
        headers={"X-Forwarded-Uri": "/v1.0/calls", "X-Forwarded-Method": "GET", **bearer(token)},
    )
    assert traefik.status_code == 200
    envoy = await client.post("/auth/verify/v1.0/calls/9", headers=bearer(token))
    assert envoy.status_code == 200
    envoy = await client.delete("/auth/verify/v1.0/calls/9", headers=bearer(token))
    assert envoy.status_code == 403
    # Each gateway's method travels with its own URI header: a stray one counts for nothing.
    mixed = await client.delete(
        "/auth/verify/v1.0/calls/9", headers={"X-Original-Method": "GET", **bearer(token)}
    )
    assert mixed.status_code == 403
    mixed = await client.get(
        "/auth/verify",
        headers={"X-Forwarded-Uri": "/v1.0/calls", "X-Original-Method": "GET", **bearer(token)},
    )
    assert mixed.status_code == 403
    # The API itself is outside the rules.
    assert_error(
        await client.get(KEYS, headers=bearer(token)), 403, "PERMISSION_DENIED", "PERMISSION_DENIED"
    )


async def test_an_unrestricted_key_is_unchanged_at_verify(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert (await verify(client, tenant.key, None, "/v1.0/anything")).status_code == 200
    assert (await verify(client, tenant.key, "DELETE", "/v1.0/x/../y")).status_code == 200


@pytest.mark.parametrize(
    "scopes",
    [
        None,  # unrestricted is more than any restriction
        [{"methods": ["GET", "POST", "DELETE"], "path_prefix": "/v1.0/accesskeys"}],
        [{"methods": ["GET"], "path_prefix": "/v1.0"}],
        "read_only",
    ],
)
async def test_a_restricted_key_never_makes_a_key_that_may_do_more(
    client: httpx.AsyncClient, tenant: Tenant, scopes: Any
) -> None:
    maker = bearer((await create_key(client, tenant.auth, scopes=KEY_ADMIN))["token"])
    body: dict[str, Any] = {"expire": 86_400}
    if scopes is not None:
        body["scopes"] = scopes
    response = await client.post(KEYS, json=body, headers=maker)
    assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")


async def test_a_restricted_key_makes_and_rotates_keys_within_its_own_scopes(
    client: httpx.AsyncClient, tenant: Tenant, clock: FrozenClock
) -> None:
    maker = bearer((await create_key(client, tenant.auth, scopes=KEY_ADMIN))["token"])
    narrower = [{"methods": ["GET"], "path_prefix": "/v1.0/accesskeys/"}]
    made = await create_key(client, maker, scopes=narrower)
    assert made["scopes"] == narrower
    rotated = await client.post(f"{key_url(made['id'])}/rotate", headers=maker)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["scopes"] == narrower  # rotation keeps the scopes
    # An unrestricted key is more than the maker holds: it may not renew one.
    plain = await create_key(client, tenant.auth)
    response = await client.post(f"{key_url(plain['id'])}/rotate", headers=maker)
    assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert (await client.get("/v1.0/customer", headers=bearer(plain["token"]))).is_success


@pytest.mark.parametrize(
    "scopes",
    [
        "all",
        [],
        [{"methods": ["GET"], "path_prefix": "/a/../b"}],
        [{"methods": ["FETCH"], "path_prefix": "/"}],
        {"methods": ["GET"], "path_prefix": "/"},
    ],
)
async def test_malformed_scopes_are_400(
    client: httpx.AsyncClient, tenant: Tenant, scopes: Any
) -> None:
    response = await client.post(
        KEYS, json={"expire": 86_400, "scopes": scopes}, headers=tenant.auth
    )
    assert "scopes" in assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


async def test_without_scopes_the_creation_response_is_voipbins(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_key(client, tenant.auth, scopes=None)
    assert set(created) == ACCESSKEY_WITH_TOKEN_FIELDS
    plain = await client.get(key_url(created["id"]), headers=tenant.auth)
    assert set(plain.json()) == ACCESSKEY_FIELDS
    expanded = await client.get(
        key_url(created["id"]), params={"expand": "scopes"}, headers=tenant.auth
    )
    assert expanded.json()["scopes"] is None


# Each read as /v1.0/accesskeys by some common server, each under /v1.0/calls
# when read literally.
READ_AS_DOT_DOT = [
    "/v1.0/calls/..;/accesskeys",  # Tomcat, Jetty, Spring
    "/v1.0/calls/..%3b/accesskeys",
    "/v1.0/calls/..%3B/accesskeys",
    "/v1.0/calls/%c0%ae%c0%ae/accesskeys",  # overlong UTF-8
    "/v1.0/calls/%EF%BC%8E%EF%BC%8E/accesskeys",  # fullwidth full stops, encoded
    "/v1.0/calls/..%20/accesskeys",
    "/v1.0/calls/..%09/accesskeys",
]
# The same as a gateway may pass them on: raw UTF-8, a raw space.
READ_AS_DOT_DOT_RAW = [
    "/v1.0/calls/\uff0e\uff0e/accesskeys".encode(),
    b"/v1.0/calls/.. /accesskeys",
    b"/v1.0/calls/..\t/accesskeys",
]


async def test_verify_refuses_every_path_some_server_reads_as_dot_dot(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = (await create_key(client, tenant.auth, scopes=CALLS_ONLY))["token"]
    assert (await verify(client, token, "GET", "/v1.0/calls/7")).status_code == 200
    for uri in [*READ_AS_DOT_DOT, *READ_AS_DOT_DOT_RAW]:
        for method in ("GET", "POST"):
            nginx = await client.get(
                "/auth/verify",
                headers={"X-Original-URI": uri, "X-Original-Method": method, **bearer(token)},
            )
            traefik = await client.get(
                "/auth/verify",
                headers={"X-Forwarded-Uri": uri, "X-Forwarded-Method": method, **bearer(token)},
            )
            for response in (nginx, traefik):
                assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
                assert response.headers["x-keyplane-error"] == response.text
    for path in READ_AS_DOT_DOT:  # Envoy: its own method, the path below /auth/verify
        for method in ("GET", "POST"):
            envoy = await client.request(method, "/auth/verify" + path, headers=bearer(token))
            assert_error(envoy, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    envoy = await client.get("/auth/verify/v1.0/calls/.. /accesskeys", headers=bearer(token))
    assert_error(envoy, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    # An unrestricted key is not judged by path.
    assert (await verify(client, tenant.key, "GET", READ_AS_DOT_DOT[0])).status_code == 200


OVERRIDE_HEADERS = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]
OVERRIDE_QUERIES = ["_method=DELETE", "_METHOD=delete", "%5Fmethod=DELETE", "x=1;_method=PUT"]
FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


async def test_verify_checks_a_method_override_as_the_method_it_names(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A key allowed GET and POST on /v1.0/calls: a POST that a framework would
    run as DELETE is refused, from every gateway."""
    token = (await create_key(client, tenant.auth, scopes=CALLS_ONLY))["token"]
    auth = bearer(token)
    nginx = {"X-Original-URI": "/v1.0/calls/1", "X-Original-Method": "POST", **auth}
    traefik = {"X-Forwarded-Uri": "/v1.0/calls/1", "X-Forwarded-Method": "POST", **auth}
    refused: list[httpx.Response] = []
    for name in [*OVERRIDE_HEADERS, "x_http_method_override"]:
        for headers in (nginx, traefik):
            refused.append(await client.get("/auth/verify", headers={**headers, name: "DELETE"}))
        refused.append(
            await client.post("/auth/verify/v1.0/calls/1", headers={**auth, name: "delete"})
        )
    for query in OVERRIDE_QUERIES:
        uri = f"/v1.0/calls/1?{query}"
        refused.append(await verify(client, token, "POST", uri))
        refused.append(
            await client.get(
                "/auth/verify",
                headers={**traefik, "X-Forwarded-Uri": uri},
            )
        )
        refused.append(await client.post("/auth/verify" + uri, headers=auth))
    for content_type in FORM_TYPES:  # a form may carry _method, which no gateway sees
        refused.append(
            await client.get("/auth/verify", headers={**nginx, "Content-Type": content_type})
        )
        refused.append(
            await client.post(
                "/auth/verify/v1.0/calls/1", headers={**auth, "Content-Type": content_type}
            )
        )
    for response in refused:
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    # What the key may do passes: an override to an allowed method, a JSON body.
    for allowed in [
        await client.get("/auth/verify", headers={**nginx, "X-HTTP-Method-Override": "GET"}),
        await client.get("/auth/verify", headers={**nginx, "Content-Type": "application/json"}),
        await verify(client, token, "POST", "/v1.0/calls/1?_method=get&payment_method=DELETE"),
        await client.post(
            "/auth/verify/v1.0/calls/1", headers={**auth, "Content-Type": "text/plain"}
        ),
    ]:
        assert allowed.status_code == 200, allowed.text
    # An unrestricted key is not judged by method.
    unrestricted = {**nginx, **bearer(tenant.key), "X-HTTP-Method-Override": "DELETE"}
    assert (await client.get("/auth/verify", headers=unrestricted)).status_code == 200


async def test_the_api_applies_the_same_rule_to_its_own_requests(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    maker = bearer((await create_key(client, tenant.auth, scopes=KEY_ADMIN))["token"])
    # A key the maker may create: only the override can make its request refused.
    body = json.dumps({"expire": 86_400, "name": "override", "scopes": KEY_ADMIN})
    refused = [
        *[
            await client.post(KEYS, content=body, headers={**maker, name: "DELETE"})
            for name in OVERRIDE_HEADERS
        ],
        *[
            await client.post(f"{KEYS}?{query}", content=body, headers=maker)
            for query in OVERRIDE_QUERIES
        ],
        *[
            await client.post(KEYS, content=body, headers={**maker, "Content-Type": form})
            for form in FORM_TYPES
        ],
        await client.get(f"{KEYS}/..;", headers=maker),
        await client.get(f"{KEYS}/%c0%ae%c0%ae", headers=maker),
        await client.get(f"{KEYS}/x;jsessionid=1", headers=maker),
    ]
    for response in refused:
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    listed = await client.get(KEYS, params={"page_size": 100}, headers=tenant.auth)
    assert "override" not in [key["name"] for key in listed.json()["result"]]
    allowed = await client.post(
        KEYS, content=body, headers={**maker, "Content-Type": "application/json"}
    )
    assert allowed.status_code == 200, allowed.text
    assert (await client.get(f"{KEYS}?_method=GET", headers=maker)).status_code == 200
