"""The error envelope, request ids and security headers (contract sections 2 and 6)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from keyplane.errors import Unavailable
from keyplane.services.auth import VerificationLookups
from keyplane.services.container import Services
from keyplane.settings import Settings
from keyplane.web import middleware
from keyplane.web.app import create_app
from tests.factories import bearer, login
from tests.integration.conftest import (
    CONTRACT_STATUSES,
    KEYS,
    PASSWORD,
    Tenant,
    assert_error,
    assert_security_headers,
    create_key,
    key_url,
)

SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
LEAKS = ("Traceback", "SELECT", "secret", "RuntimeError", 'File "', ".py", "sqlite", "sqlalchemy")


class ErrorLogRecorder:
    """Stands in for the middleware's error logger: rendering rich tracebacks is slow."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def record(event: str, *_args: Any, **fields: Any) -> None:
            self.events.append((level, event, fields))

        return record


@pytest.fixture
def error_log(monkeypatch: pytest.MonkeyPatch) -> ErrorLogRecorder:
    recorder = ErrorLogRecorder()
    monkeypatch.setattr(middleware, "error_log", recorder)
    return recorder


# --- unknown routes and wrong methods ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/nope", "/v1.0/accesskey", "/v1.0/accesskeys/a/b", "/v2.0/accesskeys", "/auth/nope"],
)
async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert_error(response, 404, "NOT_FOUND", "ROUTE_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", key_url(uuid.UUID(int=1)), {"GET", "PUT", "DELETE"}),
        ("POST", key_url(uuid.UUID(int=1)), {"GET", "PUT", "DELETE"}),
        ("DELETE", KEYS, {"GET", "POST"}),
        ("PUT", KEYS, {"GET", "POST"}),
        ("POST", "/v1.0/customer", {"GET", "PUT"}),
        ("GET", "/auth/login", {"POST"}),
    ],
)
async def test_wrong_method_is_405_envelope_with_allow(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path, headers=tenant.auth)
    assert response.status_code == 405, response.text
    allow = {part.strip() for part in response.headers["allow"].split(",")}
    assert allowed <= allow
    assert allow <= allowed | {"HEAD", "OPTIONS"}
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "reason", "message", "request_id"}
    assert body["error"]["reason"] == "METHOD_NOT_ALLOWED"
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert_security_headers(response)


# --- framework validation --------------------------------------------------------------------


@pytest.fixture
async def probe_client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus a route with typed parameters, to reach framework validation."""
    app = create_app(settings, services=services)

    @app.get("/probe/{number}")
    async def probe(number: int, limit: int) -> dict[str, int]:
        return {"number": number, "limit": limit}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_framework_validation_uses_the_envelope(probe_client: httpx.AsyncClient) -> None:
    ok = await probe_client.get("/probe/3", params={"limit": "4"})
    assert ok.json() == {"number": 3, "limit": 4}
    secret = "vb" + "_" + "S" * 32
    response = await probe_client.get("/probe/x", params={"limit": secret})
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert secret not in response.text
    missing = await probe_client.get("/probe/3")
    assert_error(missing, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")


# --- request ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "incoming",
    [
        "abc",
        "req-123_4.5:6",
        "A" * 128,
        "5b650012-2dd0-4d56-aed0-133c02a46d3f",
        "5b6500122dd04d56aed0133c02a46d3f",
    ],
)
async def test_sane_incoming_request_id_is_reused(
    client: httpx.AsyncClient, tenant: Tenant, incoming: str
) -> None:
    ok = await client.get(KEYS, headers={**tenant.auth, "X-Request-ID": incoming})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == incoming
    failed = await client.get(key_url("nope"), headers={**tenant.auth, "X-Request-ID": incoming})
    assert_error(failed, 400, "INVALID_ARGUMENT", "INVALID_ID")
    assert failed.json()["error"]["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "A" * 129,
        "x" * 5000,
        "has space",
        "<script>alert(1)</script>",
        "semi;colon",
        'quote"d',
        "new%0Aline",
        b"caf\xc3\xa9",
        "a/b",
        "vb" + "_" + "R" * 32,
    ],
)
async def test_insane_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, incoming: str | bytes
) -> None:
    raw = incoming if isinstance(incoming, bytes) else incoming.encode("ascii")
    response = await client.get("/v1.0/customer", headers=[(b"X-Request-ID", raw)])
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    text = incoming.decode("latin-1") if isinstance(incoming, bytes) else incoming
    replaced = response.headers["x-request-id"]
    assert replaced != text
    assert SANE_ID.fullmatch(replaced)
    assert text not in response.text


async def test_empty_incoming_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1.0/customer", headers={"X-Request-ID": ""})
    assert SANE_ID.fullmatch(response.headers["x-request-id"])
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_request_ids_are_unique(client: httpx.AsyncClient) -> None:
    ids = set()
    for _ in range(20):
        response = await client.get("/v1.0/customer")
        assert SANE_ID.fullmatch(response.headers["x-request-id"])
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 20


# --- security headers on everything ----------------------------------------------------------


async def test_every_response_has_no_store_and_no_referrer(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    other: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    error_log: ErrorLogRecorder,
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    created = await create_key(client, tenant.auth)
    theirs = await create_key(client, other.auth)
    auth = bearer(token)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/auth/login", {"json": {"username": tenant.username, "password": PASSWORD}}),
        ("POST", "/auth/login", {"json": {"username": tenant.username, "password": "x"}}),
        ("POST", "/auth/login", {"content": b"nope"}),
        ("GET", "/v1.0/customer", {"headers": auth}),
        ("GET", "/v1.0/customer", {"params": {"accesskey": tenant.key}}),
        ("GET", "/v1.0/customer", {}),
        ("GET", KEYS, {"headers": auth}),
        ("GET", KEYS, {"headers": auth, "params": {"page_token": "junk"}}),
        ("POST", KEYS, {"headers": auth, "json": {"expire": 86_400}}),
        ("POST", KEYS, {"headers": auth, "json": {"expire": 1}}),
        ("GET", key_url(created["id"]), {"headers": auth}),
        ("GET", key_url(theirs["id"]), {"headers": auth}),
        ("GET", key_url("bad"), {"headers": auth}),
        ("PUT", key_url(created["id"]), {"headers": auth, "json": {"name": "x"}}),
        ("DELETE", key_url(created["id"]), {"headers": auth}),
        ("GET", "/nowhere", {}),
        ("PATCH", KEYS, {"headers": auth}),
        ("GET", "/openapi.json", {}),
        ("GET", "/docs", {}),
    ]
    statuses = set()
    for method, path, kwargs in requests:
        response = await client.request(method, path, **kwargs)
        statuses.add(response.status_code)
        assert_security_headers(response)
    assert {200, 400, 401, 404, 405} <= statuses
    # Permission denied, internal error and unavailable too.
    weak = bearer(await login(client, (await _weak_agent(services, tenant)), PASSWORD))
    denied = await client.get(KEYS, headers=weak)
    assert_error(denied, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")

    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services.accesskeys, "list_page", explode)
    assert_error(await client.get(KEYS, headers=auth), 500, "INTERNAL", "INTERNAL")


async def _weak_agent(services: Services, tenant: Tenant) -> str:
    from tests.integration.conftest import quick_agent

    return (await quick_agent(services, tenant.customer, permission=16)).username


# --- 500 --------------------------------------------------------------------------------


async def test_unhandled_error_is_a_generic_500(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    error_log: ErrorLogRecorder,
) -> None:
    created = await create_key(client, tenant.auth)

    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"SELECT secret FROM x WHERE token = {tenant.key!r}")  # noqa: S608

    monkeypatch.setattr(services.accesskeys, "get", explode)
    response = await client.get(
        key_url(created["id"]), headers={**tenant.auth, "X-Request-ID": "trace-me-500"}
    )
    message = assert_error(response, 500, "INTERNAL", "INTERNAL")
    assert response.headers["x-request-id"] == "trace-me-500"
    for leak in LEAKS:
        assert leak not in response.text, leak
    assert tenant.key not in response.text
    assert "request id" in message.lower() or "request_id" in message.lower()
    assert error_log.events, "the unhandled error was logged"


@pytest.mark.parametrize(
    "error", [KeyError("token"), ValueError("SELECT 1"), ZeroDivisionError(), AssertionError("x")]
)
async def test_any_exception_in_authentication_is_a_generic_500(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    error_log: ErrorLogRecorder,
    error: Exception,
) -> None:
    async def explode(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(services.auth, "authenticate", explode)
    response = await client.get("/v1.0/customer", headers=tenant.auth)
    assert_error(response, 500, "INTERNAL", "INTERNAL")
    for leak in LEAKS:
        assert leak not in response.text, leak


async def test_exception_in_login_is_a_generic_500(
    client: httpx.AsyncClient,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    error_log: ErrorLogRecorder,
) -> None:
    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("SELECT password_hash FROM agents")

    monkeypatch.setattr(services.auth, "login", explode)
    response = await client.post("/auth/login", json={"username": "a", "password": "b"})
    assert_error(response, 500, "INTERNAL", "INTERNAL")
    for leak in LEAKS:
        assert leak not in response.text, leak


# --- 503 --------------------------------------------------------------------------------


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"]["status"] == "UNAVAILABLE"
    assert body["error"]["reason"] == "SERVICE_UNAVAILABLE"
    assert_error(response, 503, "UNAVAILABLE", body["error"]["reason"])
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    for leak in LEAKS:
        assert leak not in response.text, leak


async def test_unavailable_lookup_is_503(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*_args: object, **_kwargs: object) -> None:
        raise Unavailable()

    monkeypatch.setattr(VerificationLookups, "accesskey", down)
    response = await client.get(KEYS, headers=tenant.auth)
    _assert_unavailable(response)
    assert response.json()["error"]["reason"] == "SERVICE_UNAVAILABLE"


async def test_unreachable_database_is_503(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    created = await create_key(client, tenant.auth)
    broken = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    monkeypatch.setattr(services.database, "engine", broken)
    try:
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", KEYS, {"headers": tenant.auth}),
            ("GET", "/v1.0/customer", {"headers": bearer(token)}),
            ("GET", key_url(created["id"]), {"headers": bearer(token)}),
            ("POST", "/auth/login", {"json": {"username": tenant.username, "password": PASSWORD}}),
        ]
        for method, path, kwargs in calls:
            response = await client.request(method, path, **kwargs)
            _assert_unavailable(response)
            assert "missing" not in response.text
    finally:
        await broken.dispose()


async def test_all_contract_statuses_map_to_their_http_code(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # A spot check across endpoints: status and HTTP code agree with the table in section 6.
    samples = [
        await client.get(key_url("x"), headers=tenant.auth),
        await client.get(KEYS),
        await client.get(key_url(uuid.uuid4()), headers=tenant.auth),
    ]
    for response in samples:
        status = response.json()["error"]["status"]
        assert CONTRACT_STATUSES[status] == response.status_code
