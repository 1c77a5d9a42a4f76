"""Input that once reached past the web layer: oversize bodies, unstorable text, odd tokens.

Every case must be a 4xx in the envelope, never a 500, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest

from keyplane.services.container import Services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from keyplane.web.limits import MAX_BODY_BYTES
from tests.conftest import START
from tests.integration.conftest import KEYS, Tenant, assert_error, create_key, key_url, make_jwt

CHUNK = 8 * 1024


class CountingBody:
    """A chunked request body of up to ``total`` bytes, produced only as it is read."""

    def __init__(self, total: int, prefix: bytes = b'{"name": "') -> None:
        self.total = total
        self.prefix = prefix
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.prefix
        self.sent += len(self.prefix)
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"a" * CHUNK


# --- request bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", "/auth/login"), ("POST", KEYS)])
async def test_chunked_body_over_the_limit_is_413_and_not_read_to_the_end(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str
) -> None:
    body = CountingBody(total=1024 * 1024 * 1024)  # 1 GiB, were it all read
    response = await client.request(method, path, content=body, headers=tenant.auth)
    assert_error(response, 413, "INVALID_ARGUMENT", "BODY_TOO_LARGE")
    assert body.sent <= MAX_BODY_BYTES + 2 * CHUNK


async def test_chunked_body_within_the_limit_is_read(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    payload = json.dumps({"name": "n" * (MAX_BODY_BYTES - 200), "expire": 86_400}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), CHUNK):
            yield payload[start : start + CHUNK]

    response = await client.post(KEYS, content=chunks(), headers=tenant.auth)
    assert response.status_code == 200, response.text


async def test_declared_oversize_body_is_413_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/login", content=b"{}" + b" " * MAX_BODY_BYTES, headers={"Accept": "*/*"}
    )
    assert_error(response, 413, "INVALID_ARGUMENT", "BODY_TOO_LARGE")
    assert response.headers["connection"] == "close"


async def test_body_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    payload = json.dumps({"name": "", "expire": 86_400}).encode()
    payload += b" " * (MAX_BODY_BYTES - len(payload))
    response = await client.post(KEYS, content=payload, headers=tenant.auth)
    assert response.status_code == 200, response.text


async def test_body_that_stops_arriving_is_408(
    settings: Settings, services: Services, tenant: Tenant
) -> None:
    app = create_app(settings.model_copy(update={"body_timeout": 0.2}), services=services)
    never = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        await never.wait()  # the client goes quiet mid-body
        yield b'"}'

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with anyio.fail_after(5):  # a regression guard: without the limit it waits forever
            response = await http.post(KEYS, content=stalls(), headers=tenant.auth)
    assert_error(response, 408, "INVALID_ARGUMENT", "BODY_TIMEOUT")
    assert response.headers["connection"] == "close"


# --- text that cannot be stored --------------------------------------------------------------

UNSTORABLE = ["\ud800", "a\udfffb", "nul\x00here"]


def _raw_json(fields: dict[str, Any]) -> bytes:
    # json.dumps escapes surrogates and NUL as \uXXXX, which is what clients send.
    return json.dumps(fields).encode()


@pytest.mark.parametrize("value", UNSTORABLE)
@pytest.mark.parametrize("field", ["username", "password"])
async def test_unstorable_text_in_login_is_400(
    client: httpx.AsyncClient, tenant: Tenant, field: str, value: str
) -> None:
    fields = {"username": tenant.username, "password": "x"}
    fields[field] = value
    response = await client.post("/auth/login", content=_raw_json(fields))
    message = assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert field in message


@pytest.mark.parametrize("value", UNSTORABLE)
@pytest.mark.parametrize("field", ["name", "detail"])
async def test_unstorable_text_in_accesskey_create_and_update_is_400(
    client: httpx.AsyncClient, tenant: Tenant, field: str, value: str
) -> None:
    created = await client.post(
        KEYS, content=_raw_json({field: value, "expire": 86_400}), headers=tenant.auth
    )
    assert_error(created, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    key = await create_key(client, tenant.auth)
    updated = await client.put(
        key_url(key["id"]), content=_raw_json({field: value}), headers=tenant.auth
    )
    assert_error(updated, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


async def test_ordinary_unicode_is_still_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = await create_key(client, tenant.auth, name="clé 🔑 ключ", detail="tab\there")
    assert key["name"] == "clé 🔑 ключ"


# --- session tokens with odd time claims -----------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 10**18},
        {"iat": 10**18},
        {"exp": -(10**18)},
        {"exp": str(int((START + timedelta(days=1)).timestamp()))},
        {"iat": str(int(START.timestamp()))},
        {"exp": float(int((START + timedelta(days=1)).timestamp()))},
        {"exp": True},
        {"exp": None},
        {"exp": [1]},
    ],
    ids=repr,
)
async def test_session_token_with_absurd_or_mistyped_time_claims_is_401(
    client: httpx.AsyncClient, tenant: Tenant, claims: dict[str, Any]
) -> None:
    token = make_jwt(tenant.agent_id, tenant.id, START, **claims)
    response = await client.get("/v1.0/customer", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_well_formed_session_token_still_works(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = make_jwt(tenant.agent_id, tenant.id, START)
    response = await client.get("/v1.0/customer", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


# --- URLs and methods ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{KEYS}/", "/v1.0/customer/", "/auth/login/", "/health/live/"])
async def test_trailing_slash_is_404_never_a_redirect(
    client: httpx.AsyncClient, tenant: Tenant, path: str
) -> None:
    response = await client.get(f"{path}?accesskey={tenant.key}")
    assert_error(response, 404, "NOT_FOUND", "ROUTE_NOT_FOUND")
    assert "location" not in response.headers
    assert tenant.key not in response.text


@pytest.mark.parametrize("path", ["/health/live", "/v1.0/customer", KEYS, "/openapi.json", "/docs"])
async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, tenant: Tenant, path: str
) -> None:
    get = await client.get(path, headers=tenant.auth)
    head = await client.head(path, headers=tenant.auth)
    assert get.status_code == 200, get.text
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["cache-control"] == "no-store"


async def test_head_without_credentials_is_401_like_get(client: httpx.AsyncClient) -> None:
    response = await client.head("/v1.0/customer")
    assert response.status_code == 401
    assert response.content == b""


async def test_allow_lists_head_next_to_get(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(KEYS, headers=tenant.auth)
    assert response.status_code == 405
    error = response.json()["error"]
    assert (error["status"], error["reason"]) == ("METHOD_NOT_ALLOWED", "METHOD_NOT_ALLOWED")
    allowed = [part.strip() for part in response.headers["allow"].split(",")]
    assert "HEAD" in allowed
