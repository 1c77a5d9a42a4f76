"""keyplane.gateway never lets a client's own ``X-Keyplane-*`` header reach the app.

A service behind ``KeyplaneAuthMiddleware`` or ``KeyplaneAuth`` trusts these
headers as the caller's identity, so a client that sends its own would pose as
another customer. Every test sends forged ones in every case and position:
lower, upper and mixed case, before and after the real credential, repeated,
and a name keyplane never sets; on allowed, refused and exempt requests. The
app is driven at the ASGI level, so header names reach it in the case they
were sent (a server that lowercases them, as ASGI asks, makes it easier).
The verifier asks the real ``/auth/verify`` (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.types import Message, Receive, Scope, Send

from keyplane.gateway import (
    KeyplaneAuth,
    KeyplaneAuthMiddleware,
    KeyplaneRefused,
    KeyplaneVerifier,
    VerifiedIdentity,
    refusal_handler,
)
from tests.factories import fake_token
from tests.integration.conftest import Tenant

OTHER_CUSTOMER = str(uuid.uuid4())
FORGED_NAMES = (
    b"x-keyplane-customer-id",
    b"X-KEYPLANE-CUSTOMER-ID",
    b"X-Keyplane-Customer-Id",
    b"x-KeYpLaNe-PeRmIsSiOn",
    b"X-Keyplane-Identity-Type",
    b"X-KEYPLANE-IDENTITY-ID",
    b"x-keyplane-token-prefix",
    b"X-Keyplane-Request-Id",
    b"X-Keyplane-Extra",
)
IDENTITY = (
    b"x-keyplane-customer-id",
    b"x-keyplane-identity-type",
    b"x-keyplane-identity-id",
    b"x-keyplane-permission",
    b"x-keyplane-token-prefix",
)


def forged(value: bytes = OTHER_CUSTOMER.encode()) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name in FORGED_NAMES]


def around(credential: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Forged headers before and after the credential, each name twice."""
    return [*forged(), (b"accept", b"*/*"), *credential, *forged(b"65535"), *forged()]


def keyplane_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower().startswith(b"x-keyplane-")]


def assert_only_keyplanes_identity(seen: list[tuple[bytes, bytes]], tenant: Tenant) -> None:
    identity = keyplane_headers(seen)
    assert sorted(name for name, _ in identity) == sorted(IDENTITY), identity
    values = dict(identity)
    assert values[b"x-keyplane-customer-id"] == tenant.id.encode()
    assert values[b"x-keyplane-permission"] == b"32"
    assert values[b"x-keyplane-token-prefix"] == tenant.key[:11].encode()


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One GET through ``app``, with header names exactly as given."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"service"), *headers],
        "client": ("127.0.0.1", 40_000),
        "server": ("service", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


class Recorder:
    """An ASGI app that records the headers it was given."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def verifier(client: httpx.AsyncClient) -> KeyplaneVerifier:
    """Asks the real /auth/verify of the test's keyplane; no cache, so every request asks."""
    return KeyplaneVerifier(str(client.base_url), client=client, cache_ttl=0)


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def test_middleware_an_allowed_request_sees_keyplanes_identity_only(
    verifier: KeyplaneVerifier, tenant: Tenant
) -> None:
    app = Recorder()
    protected = KeyplaneAuthMiddleware(app, verifier)
    for credential in (
        _bearer(tenant.key),
        [(b"cookie", f"accesskey={tenant.key}".encode())],
        [(b"Authorization", f"Bearer {tenant.key}".encode())],
    ):
        status, _ = await call(protected, "/v1.0/calls", around(credential))
        assert status == 204
        assert_only_keyplanes_identity(app.seen[-1], tenant)


async def test_middleware_a_refused_request_never_reaches_the_app(
    verifier: KeyplaneVerifier, tenant: Tenant
) -> None:
    app = Recorder()
    protected = KeyplaneAuthMiddleware(app, verifier)
    for credential in ([], _bearer(fake_token()), _bearer("not-a-key")):
        status, body = await call(protected, "/v1.0/calls", around(credential))
        assert status == 401, body
        assert json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
        assert OTHER_CUSTOMER.encode() not in body
    assert app.seen == []


async def test_middleware_an_exempt_request_sees_no_identity_at_all(
    verifier: KeyplaneVerifier, tenant: Tenant
) -> None:
    app = Recorder()
    protected = KeyplaneAuthMiddleware(app, verifier, exempt={"/health"})
    for credential in ([], _bearer(tenant.key)):
        status, _ = await call(protected, "/health", around(credential))
        assert status == 204
        assert keyplane_headers(app.seen[-1]) == []


def _service(verifier: KeyplaneVerifier, *, behind_middleware: bool) -> FastAPI:
    app = FastAPI()
    app.add_exception_handler(KeyplaneRefused, refusal_handler)
    if behind_middleware:
        app.add_middleware(KeyplaneAuthMiddleware, verifier=verifier)
    caller = KeyplaneAuth(verifier)

    @app.get("/v1.0/calls")  # the default form: annotations here are strings, resolved globally
    async def calls(
        request: Request, identity: VerifiedIdentity = Depends(caller)
    ) -> dict[str, Any]:
        return {
            "customer": identity.customer_id,
            "raw": [[n.decode(), v.decode()] for n, v in request.scope["headers"]],
            # What a handler asking by name gets, after the dependency ran.
            "by_name": request.headers.getlist("x-keyplane-customer-id"),
        }

    return app


@pytest.mark.parametrize("behind_middleware", [False, True], ids=["alone", "behind-middleware"])
async def test_dependency_an_allowed_request_sees_keyplanes_identity_only(
    verifier: KeyplaneVerifier, tenant: Tenant, behind_middleware: bool
) -> None:
    app = _service(verifier, behind_middleware=behind_middleware)
    for credential in (_bearer(tenant.key), [(b"Cookie", f"accesskey={tenant.key}".encode())]):
        status, body = await call(app, "/v1.0/calls", around(credential))
        assert status == 200, body
        answer = json.loads(body)
        assert answer["customer"] == tenant.id
        assert answer["by_name"] == [tenant.id]
        seen = [(name.encode(), value.encode()) for name, value in answer["raw"]]
        assert_only_keyplanes_identity(seen, tenant)


@pytest.mark.parametrize("behind_middleware", [False, True], ids=["alone", "behind-middleware"])
async def test_dependency_a_refused_request_is_keyplanes_answer(
    verifier: KeyplaneVerifier, tenant: Tenant, behind_middleware: bool
) -> None:
    app = _service(verifier, behind_middleware=behind_middleware)
    for credential in ([], _bearer(fake_token())):
        status, body = await call(app, "/v1.0/calls", around(credential))
        assert status == 401, body
        assert set(json.loads(body)) == {"error"}
        assert OTHER_CUSTOMER.encode() not in body


async def test_middleware_hands_the_app_no_credential_header(
    verifier: KeyplaneVerifier, tenant: Tenant
) -> None:
    """keyplane's X-Keyplane-Upstream-Authorization decides: a header holding a key goes,
    another scheme's stays."""
    app = Recorder()
    protected = KeyplaneAuthMiddleware(app, verifier)
    cookie = (b"cookie", f"accesskey={tenant.key}; theme=dark".encode())
    for authorization, kept in (
        (f"Token {tenant.key}".encode(), None),
        (f"Bearer {tenant.key}".encode(), None),
        (b"Basic dXNlcjpwYXNz", b"Basic dXNlcjpwYXNz"),
    ):
        status, _ = await call(
            protected, "/v1.0/calls", [cookie, (b"authorization", authorization)]
        )
        assert status == 204
        seen = app.seen[-1]
        assert [v for n, v in seen if n.lower() == b"authorization"] == ([kept] if kept else [])
        assert [v for n, v in seen if n.lower() == b"cookie"] == [b"theme=dark"]
        assert tenant.key.encode() not in b"".join(v for _, v in seen)
