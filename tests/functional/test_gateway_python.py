"""keyplane.gateway (middleware and FastAPI dependency) against a live ``keyplane serve``."""

from __future__ import annotations

import importlib.util
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from keyplane.domain.networks import parse_networks
from keyplane.domain.permissions import Identity, Permission
from keyplane.domain.scopes import HEADER_NAMES, parse_scopes
from keyplane.gateway import (
    KeyplaneAuth,
    KeyplaneAuthMiddleware,
    KeyplaneRefused,
    KeyplaneVerifier,
    VerifiedIdentity,
    refusal_handler,
)
from keyplane.gateway._verifier import SCOPE_HEADERS
from keyplane.services.container import build_services
from tests.conftest import make_settings
from tests.functional.test_replicas import KEYPLANE, Replica, _environment
from tests.servers import free_port
from tests.ticker import Ticker

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python_service" / "app.py"
OPERATOR = Identity.operator()


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keyplane_python_service_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Live:
    url: str
    root: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("python-gateway")
    env = _environment(f"sqlite+aiosqlite:///{root / 'keyplane.db'}", "", root)
    env.pop("KEYPLANE_REDIS_URL")
    subprocess.run([KEYPLANE, "migrate"], env=env, cwd=root, check=True, timeout=60)
    server = Replica(free_port(), root / "keyplane.log", env)
    server.start()
    try:
        yield Live(server.url, root, env)
    finally:
        server.stop()


@dataclass
class Harness:
    verifier: KeyplaneVerifier
    clock: Ticker
    asked: list[str]


@pytest.fixture
async def harness(live: Live) -> AsyncIterator[Harness]:
    asked: list[str] = []

    async def count(request: httpx.Request) -> None:
        asked.append(request.url.path)

    clock = Ticker()
    client = httpx.AsyncClient(base_url=live.url, event_hooks={"request": [count]})
    verifier = KeyplaneVerifier(live.url, client=client, clock=clock)
    try:
        yield Harness(verifier, clock, asked)
    finally:
        await verifier.aclose()


async def _key(live: Live) -> tuple[uuid.UUID, uuid.UUID, str]:
    settings = make_settings(live.root, database_url=live.env["KEYPLANE_DATABASE_URL"])
    services = build_services(settings)
    try:
        customer = await services.customers.create_customer(OPERATOR, name="svc")
        key, token = await services.accesskeys.create(
            OPERATOR, customer.id, name="", detail="", expire=86_400
        )
    finally:
        await services.close()
    return customer.id, key.id, token


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_middleware_gives_the_identity_and_hides_the_credential(
    live: Live, harness: Harness
) -> None:
    customer_id, key_id, token = await _key(live)
    app = _example().create_app(harness.verifier)
    async with _client(app) as http:
        response = await http.get(
            f"/v1.0/whoami?page=2&accesskey={token}",
            headers={
                "Cookie": f"accesskey={token}; theme=dark",
                "X-Keyplane-Customer-Id": str(uuid.uuid4()),
            },
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["customer_id"] == str(customer_id)
    assert body["identity_type"] == "accesskey"
    assert body["identity_id"] == str(key_id)
    assert body["permission"] == int(Permission.CUSTOMER_ADMIN)
    assert body["token_prefix"] == token[:11]
    assert body["query"] == "page=2"
    assert body["cookies"] == {"theme": "dark"}
    assert token not in response.text


async def test_refusals_are_keyplanes_own_answer(live: Live, harness: Harness) -> None:
    app = _example().create_app(harness.verifier)
    async with _client(app) as http:
        missing = await http.get("/v1.0/whoami")
        unknown = await http.get("/v1.0/whoami", headers={"Authorization": "Bearer vb_" + "K" * 32})
        health = await http.get("/health")
    assert missing.status_code == 401
    assert missing.json()["error"]["reason"] == "AUTHENTICATION_REQUIRED"
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert unknown.status_code == 401
    assert unknown.json()["error"]["reason"] == "INVALID_CREDENTIALS"
    assert health.status_code == 200  # exempt
    assert harness.asked == ["/auth/verify", "/auth/verify"]


async def test_cache_is_bounded_by_the_revocation_promise(live: Live, harness: Harness) -> None:
    _, key_id, token = await _key(live)
    app = _example().create_app(harness.verifier)
    auth = {"Authorization": f"Bearer {token}"}
    async with _client(app) as http, httpx.AsyncClient(base_url=live.url) as keyplane:
        assert (await http.get("/v1.0/whoami", headers=auth)).status_code == 200
        assert (await http.get("/v1.0/whoami", headers=auth)).status_code == 200
        assert len(harness.asked) == 1  # the second one came from the cache
        deleted = await keyplane.delete(f"/v1.0/accesskeys/{key_id}", headers=auth)
        assert deleted.status_code == 200
        harness.clock.now += 0.5  # within the bound, the cache may still answer...
        assert (await http.get("/v1.0/whoami", headers=auth)).status_code == 200
        harness.clock.now += 0.5  # ...and at one second it no longer does
        refused = await http.get("/v1.0/whoami", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["reason"] == "INVALID_CREDENTIALS"
    assert KeyplaneVerifier(live.url, cache_ttl=60).cache_ttl == 1.0


async def test_dependency_alone(live: Live, harness: Harness) -> None:
    customer_id, _, token = await _key(live)
    app = FastAPI()
    app.add_exception_handler(KeyplaneRefused, refusal_handler)

    dependency = KeyplaneAuth(harness.verifier)

    @app.get("/calls")  # the default form: annotations here are strings, resolved globally
    async def calls(caller: VerifiedIdentity = Depends(dependency)) -> dict[str, str]:
        return {"customer": caller.customer_id}

    async with _client(app) as http:
        allowed = await http.get(f"/calls?accesskey={token}")
        refused = await http.get("/calls?accesskey=vb_nope")
    assert allowed.json() == {"customer": str(customer_id)}
    assert refused.status_code == 401
    assert refused.json()["error"]["reason"] == "INVALID_CREDENTIALS"


async def test_a_restricted_key_is_judged_per_method_and_path(live: Live, harness: Harness) -> None:
    """A cached verdict for one request never answers for another method or path."""
    token = await _scoped_token(live, ["GET"], "/v1.0/whoami")
    app = _example().create_app(harness.verifier)
    auth = {"Authorization": f"Bearer {token}"}
    async with _client(app) as http:
        allowed = await http.get("/v1.0/whoami", headers=auth)
        posted = await http.post("/v1.0/whoami", headers=auth)
        elsewhere = await http.get("/v1.0/other", headers=auth)
    assert allowed.status_code == 200, allowed.text
    for refused in (posted, elsewhere):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["reason"] == "PERMISSION_DENIED"
    assert len(harness.asked) == 3


async def test_what_the_app_may_run_a_request_as_is_judged_too(
    live: Live, harness: Harness
) -> None:
    """A key allowed GET and POST: a POST the app could run as DELETE (an override header in
    either spelling, ``_method``, a form body) is refused, also after the plain POST's
    verdict was cached."""
    token = await _scoped_token(live, ["GET", "POST"], "/v1.0/whoami")
    app = _example().create_app(harness.verifier)
    auth = {"Authorization": f"Bearer {token}"}
    async with _client(app) as http:
        plain = await http.post("/v1.0/whoami", headers={**auth, "Content-Type": "text/plain"})
        assert plain.status_code != 403, plain.text  # keyplane let it through to the app
        for path, headers in [
            ("/v1.0/whoami", {"X-HTTP-Method-Override": "DELETE"}),
            ("/v1.0/whoami", {"X_HTTP_Method_Override": "DELETE"}),
            ("/v1.0/whoami", {"X-Method-Override": "PUT"}),
            ("/v1.0/whoami?_method=DELETE", {}),
            ("/v1.0/whoami", {"Content-Type": "application/x-www-form-urlencoded"}),
        ]:
            refused = await http.post(path, headers={**auth, **headers})
            assert refused.status_code == 403, (path, headers, refused.text)
            assert refused.json()["error"]["reason"] == "PERMISSION_DENIED"


def test_the_gateway_sends_every_header_the_scopes_read() -> None:
    """keyplane.gateway keeps its own copy of the names (it imports nothing of the server)."""
    assert {name.replace("_", "-") for name in HEADER_NAMES} == SCOPE_HEADERS


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(live: Live) -> None:
    """This server trusts no proxy on loopback: a client claiming an allowlisted address in
    X-Forwarded-For is judged by its own address."""
    env = {**live.env, "KEYPLANE_TRUSTED_PROXIES": "192.0.2.1"}
    server = Replica(free_port(), live.root / "untrusting.log", env)
    server.start()
    try:
        settings = make_settings(live.root, database_url=live.env["KEYPLANE_DATABASE_URL"])
        services = build_services(settings)
        try:
            customer = await services.customers.create_customer(OPERATOR, name="svc")
            _, loopback = await services.accesskeys.create(
                OPERATOR,
                customer.id,
                name="",
                detail="",
                expire=86_400,
                allowed_networks=parse_networks(["127.0.0.0/8"]),
            )
            _, remote = await services.accesskeys.create(
                OPERATOR,
                customer.id,
                name="",
                detail="",
                expire=86_400,
                allowed_networks=parse_networks(["198.51.100.0/24"]),
            )
        finally:
            await services.close()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            claimed = {"X-Forwarded-For": "198.51.100.7"}
            mine = await http.get("/v1.0/customer", headers={**claimed, **_bearer(loopback)})
            assert mine.status_code == 200, mine.text
            forged = await http.get("/v1.0/customer", headers={**claimed, **_bearer(remote)})
            assert forged.status_code == 403, forged.text
            assert forged.json()["error"]["reason"] == "PERMISSION_DENIED"
    finally:
        server.stop()


async def _scoped_token(live: Live, methods: list[str], path_prefix: str) -> str:
    """A new customer's key allowed ``methods`` under ``path_prefix`` only."""
    settings = make_settings(live.root, database_url=live.env["KEYPLANE_DATABASE_URL"])
    services = build_services(settings)
    try:
        customer = await services.customers.create_customer(OPERATOR, name="svc")
        _, token = await services.accesskeys.create(
            OPERATOR,
            customer.id,
            name="",
            detail="",
            expire=86_400,
            scopes=parse_scopes([{"methods": methods, "path_prefix": path_prefix}]),
        )
    finally:
        await services.close()
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_utf8_cookie_reaches_the_service_unchanged(live: Live, harness: Harness) -> None:
    """Browsers send cookies in UTF-8: the service gets their bytes, keyplane's removed."""
    _, _, token = await _key(live)
    seen: list[bytes | None] = []

    async def service(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope["headers"]).get(b"cookie"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protected = KeyplaneAuthMiddleware(service, harness.verifier)
    cookie = f"theme=café ☕; accesskey={token}".encode()
    transport = httpx.ASGITransport(app=protected)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        response = await http.get("/v1.0/calls", headers={"Cookie": cookie})
    assert response.status_code == 204, response.text
    assert seen == ["theme=café ☕".encode()]


async def test_an_unreachable_keyplane_is_503_never_a_pass() -> None:
    verifier = KeyplaneVerifier(f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        app = _example().create_app(verifier)
        async with _client(app) as http:
            response = await http.get("/v1.0/whoami?accesskey=vb_" + "A" * 32)
    finally:
        await verifier.aclose()
    assert response.status_code == 503
    assert response.json()["error"]["reason"] == "UNAVAILABLE"
    assert response.headers["retry-after"] == "1"
