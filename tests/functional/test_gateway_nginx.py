"""The shipped nginx recipe, for real: nginx -> keyplane (two replicas) -> the calls service.

Runs Debian's nginx with ``examples/nginx/keyplane-gateway.conf``, templated
with free loopback ports only, in front of two ``keyplane serve`` processes
on PostgreSQL and Redis and ``examples/calls_service``, which records every
request it receives so the test can check that no credential reached it.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from keyplane.domain.permissions import Identity, Permission
from keyplane.services.container import build_services
from keyplane.store.engine import create_engine
from tests.conftest import make_settings
from tests.functional.test_replicas import KEYPLANE, Replica, _environment
from tests.servers import NginxServer, PostgresServer, RedisServer, free_port, wait_for_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "examples" / "nginx" / "keyplane-gateway.conf"
CALLS_SERVICE = ROOT / "examples" / "calls_service" / "calls_service.py"
BOUND = 1.0  # seconds: the revocation promise
OPERATOR = Identity.operator()
PASSWORD = "gateway test password"
FAILURE_BURST = 5
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


def templated_recipe(
    keyplane_ports: list[int], calls_port: int, port: int, logs: Path, *, behind_balancer: bool
) -> str:
    """The shipped file with its three addresses and log paths pointed at this test.

    ``behind_balancer``: as docs/deployment.md says for nginx behind another load
    balancer, nginx passes the X-Forwarded-For it was given, with its peer added.
    The tests then play that balancer, each naming a client address of its own so
    that their failure budgets stay apart. As shipped, nginx names its peer only.
    """
    recipe = RECIPE.read_text()
    replacements = {
        "server 127.0.0.1:8080;": " ".join(f"server 127.0.0.1:{p};" for p in keyplane_ports),
        "server 127.0.0.1:8081;": f"server 127.0.0.1:{calls_port};",
        "listen 127.0.0.1:8000;": f"listen 127.0.0.1:{port};",
        "/var/log/nginx/": f"{logs}/",
    }
    if behind_balancer:
        replacements["X-Forwarded-For $remote_addr;"] = (
            "X-Forwarded-For $proxy_add_x_forwarded_for;"
        )
    for old, new in replacements.items():
        assert old in recipe, f"{RECIPE} no longer contains {old!r}"
        recipe = recipe.replace(old, new)
    return recipe


@dataclass
class CallsService:
    port: int
    record: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CALLS_SERVICE), "--port", str(self.port)],
            env={"CALLS_RECORD": str(self.record), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def received(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@dataclass
class Gateway:
    url: str
    replicas: list[Replica]
    calls: CallsService
    nginx: NginxServer
    env: dict[str, str]
    root: Path
    secrets: list[str] = field(default_factory=list)

    @property
    def a(self) -> str:
        return self.replicas[0].url


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    postgres, redis = PostgresServer(), RedisServer()
    replicas: list[Replica] = []
    calls = CallsService(free_port(), root / "received.jsonl")
    nginx: NginxServer | None = None
    try:
        postgres.init()
        postgres.start()
        database_url = postgres.create_database("gateway")
        redis.start()
        env = _environment(database_url, redis.url, root)
        env["KEYPLANE_RATELIMIT_AUTH_FAILURES_BURST"] = str(FAILURE_BURST)
        subprocess.run([KEYPLANE, "migrate"], env=env, cwd=root, check=True, timeout=60)
        for index in range(2):
            replica = Replica(free_port(), root / f"replica-{index}.log", env)
            replica.start()
            replicas.append(replica)
        calls.start()
        port = free_port()
        site = templated_recipe(
            [r.port for r in replicas], calls.port, port, root, behind_balancer=True
        )
        nginx = NginxServer([], port=port, site=site)
        nginx.start()
        yield Gateway(nginx.url, replicas, calls, nginx, env, root)
    finally:
        if nginx is not None:
            nginx.destroy()
        calls.stop()
        for replica in replicas:
            replica.stop()
        redis.destroy()
        postgres.destroy()


@dataclass
class Tenant:
    customer_id: uuid.UUID
    key_id: uuid.UUID
    token: str
    username: str


async def _tenant(gateway: Gateway) -> Tenant:
    settings = make_settings(
        gateway.root,
        database_url=gateway.env["KEYPLANE_DATABASE_URL"],
        redis_url=gateway.env["KEYPLANE_REDIS_URL"],
    )
    services = build_services(settings)
    try:
        customer = await services.customers.create_customer(OPERATOR, name="tenant")
        key, token = await services.accesskeys.create(
            OPERATOR, customer.id, name="calls", detail="", expire=86_400
        )
        username = f"agent-{uuid.uuid4().hex[:8]}"
        await services.customers.create_agent(
            OPERATOR,
            customer.id,
            username=username,
            password=PASSWORD,
            permission=int(Permission.CUSTOMER_AGENT),
        )
    finally:
        await services.close()
    gateway.secrets.append(token)
    return Tenant(customer.id, key.id, token, username)


async def _session(http: httpx.AsyncClient, gateway: Gateway, tenant: Tenant) -> str:
    response = await http.post(
        f"{gateway.a}/auth/login", json={"username": tenant.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    gateway.secrets.append(token)
    return token


def _from(address: str | None = None) -> dict[str, str]:
    """A client address of its own, so failure budgets of tests stay apart."""
    return {"X-Forwarded-For": address or next(_addresses)}


def assert_envelope(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"status", "reason", "message", "request_id"}
    assert error["reason"] == reason
    assert error["request_id"] == response.headers["x-request-id"]
    assert "nginx" not in response.text


async def test_every_allowed_form_reaches_the_api_as_the_customer(gateway: Gateway) -> None:
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        jwt = await _session(http, gateway, tenant)
        calls = f"{gateway.url}/v1.0/calls"
        created = await http.post(
            calls, json={"source": "+1", "destination": "+2"}, headers=_bearer(tenant.token)
        )
        assert created.status_code == 200, created.text
        assert created.json()["customer_id"] == str(tenant.customer_id)
        forms: list[dict[str, Any]] = [
            {"url": f"{calls}?accesskey={tenant.token}"},
            {"url": calls, "headers": _bearer(tenant.token)},
            {"url": calls, "headers": {"Cookie": f"accesskey={tenant.token}"}},
            {"url": f"{calls}?token={jwt}"},
            {"url": calls, "headers": _bearer(jwt)},
            {"url": calls, "headers": {"Cookie": f"token={jwt}"}},
        ]
        for form in forms:
            response = await http.get(**form)
            assert response.status_code == 200, (form, response.text)
            assert [c["id"] for c in response.json()["result"]] == [created.json()["id"]]


async def test_a_restricted_keys_scopes_hold_through_the_gateway(gateway: Gateway) -> None:
    """A key allowed GET on /v1.0/calls only: GETs pass, a POST or an escaping path is 403
    with keyplane's envelope and never reaches the API."""
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{gateway.a}/v1.0/accesskeys",
            json={
                "expire": 86_400,
                "scopes": [{"methods": ["GET"], "path_prefix": "/v1.0/calls"}],
            },
            headers=_bearer(tenant.token),
        )
        assert response.status_code == 200, response.text
        restricted = response.json()["token"]
        gateway.secrets.append(restricted)
        marker = uuid.uuid4().hex
        calls = f"{gateway.url}/v1.0/calls?m={marker}"
        for _ in range(2):  # round robin: each replica answers
            allowed = await http.get(calls, headers=_bearer(restricted))
            assert allowed.status_code == 200, allowed.text
        refused = [
            await http.post(calls, json={"source": "+1"}, headers=_bearer(restricted)),
            await http.post(f"{calls}&accesskey={restricted}", json={"source": "+1"}),
            await http.get(
                f"{gateway.url}/v1.0/calls/%2e%2e/calls?m={marker}", headers=_bearer(restricted)
            ),
        ]
        for response in refused:
            assert_envelope(response, 403, "PERMISSION_DENIED")
            assert response.headers["cache-control"] == "no-store"
        # The unrestricted key that made it still may POST.
        made = await http.post(calls, json={"source": "+1"}, headers=_bearer(tenant.token))
        assert made.status_code == 200, made.text
    mine = [r for r in gateway.calls.received() if marker in r["query"]]
    assert [r["method"] for r in mine] == ["GET", "GET", "POST"]


async def test_scopes_hold_against_path_and_method_look_alikes(gateway: Gateway) -> None:
    """A key allowed GET and POST on /v1.0/calls: a path some server reads as ``..``,
    and a POST the API behind could run as DELETE, are 403 and never reach the API."""
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{gateway.a}/v1.0/accesskeys",
            json={
                "expire": 86_400,
                "scopes": [{"methods": ["GET", "POST"], "path_prefix": "/v1.0/calls"}],
            },
            headers=_bearer(tenant.token),
        )
        assert response.status_code == 200, response.text
        restricted = _bearer(response.json()["token"])
        gateway.secrets.append(response.json()["token"])
        marker = uuid.uuid4().hex
        calls = f"{gateway.url}/v1.0/calls"
        refused = [
            # /v1.0/agents, not /v1.0/accesskeys: this module's access log must never
            # show "accesskey" (test_the_access_log_never_records_a_query_string).
            await http.get(f"{calls}/{dots}/agents?m={marker}", headers=restricted)
            for dots in (
                "..;",
                "..%3b",
                "..%3B",
                "%c0%ae%c0%ae",
                "%EF%BC%8E%EF%BC%8E",
                "..%20",
                "..%09",
            )
        ]
        call = {"source": "+1", "destination": "+2"}
        refused += [
            await http.post(
                f"{calls}?m={marker}",
                json=call,
                headers={**restricted, "X-HTTP-Method-Override": "DELETE"},
            ),
            await http.post(f"{calls}?m={marker}&_method=DELETE", json=call, headers=restricted),
            await http.post(f"{calls}?m={marker}", data={"_method": "DELETE"}, headers=restricted),
        ]
        for response in refused:
            assert_envelope(response, 403, "PERMISSION_DENIED")
        for _ in range(2):  # round robin: each replica answers
            allowed = await http.post(f"{calls}?m={marker}", json=call, headers=restricted)
            assert allowed.status_code == 200, allowed.text
    mine = [r for r in gateway.calls.received() if marker in r["query"]]
    assert [r["method"] for r in mine] == ["POST", "POST"]
    assert all(r["path"] == "/v1.0/calls" for r in mine)


async def test_an_ip_allowlist_holds_through_the_gateway(gateway: Gateway) -> None:
    """nginx names the client in X-Forwarded-For and keyplane trusts it (a trusted proxy):
    the address judged is the client's, not the gateway's."""
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        tokens = {}
        for networks in ("127.0.0.0/8", "192.0.2.0/24"):
            response = await http.post(
                f"{gateway.a}/v1.0/accesskeys",
                json={"expire": 86_400, "allowed_networks": [networks]},
                headers=_bearer(tenant.token),
            )
            assert response.status_code == 200, response.text
            tokens[networks] = response.json()["token"]
            gateway.secrets.append(tokens[networks])
        calls = f"{gateway.url}/v1.0/calls"
        for _ in range(2):  # round robin: each replica answers
            local = await http.get(calls, headers=_bearer(tokens["127.0.0.0/8"]))
            assert local.status_code == 200, local.text
            named = await http.get(
                calls, headers={**_bearer(tokens["127.0.0.0/8"]), **_from("192.0.3.10")}
            )
            assert_envelope(named, 403, "PERMISSION_DENIED")
            elsewhere = await http.get(calls, headers=_bearer(tokens["192.0.2.0/24"]))
            assert_envelope(elsewhere, 403, "PERMISSION_DENIED")


async def test_as_shipped_a_client_cannot_name_its_own_address(gateway: Gateway) -> None:
    """The shipped file sends nginx's peer in X-Forwarded-For: what a client writes
    there changes neither the address an allowlist judges nor the one whose failure
    budget counts (both are the client address keyplane resolves)."""
    tenant = await _tenant(gateway)
    port = free_port()
    site = templated_recipe(
        [r.port for r in gateway.replicas],
        gateway.calls.port,
        port,
        gateway.root / "as-shipped",
        behind_balancer=False,
    )
    (gateway.root / "as-shipped").mkdir()
    nginx = NginxServer([], port=port, site=site)
    nginx.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            made = await http.post(
                f"{gateway.a}/v1.0/accesskeys",
                json={"expire": 86_400, "allowed_networks": ["127.0.0.0/8"]},
                headers=_bearer(tenant.token),
            )
            assert made.status_code == 200, made.text
            local_only = made.json()["token"]
            gateway.secrets.append(local_only)
            calls = f"{nginx.url}/v1.0/calls"
            # Positive control: through the balancer-mode gateway the claim counts.
            claimed = await http.get(
                f"{gateway.url}/v1.0/calls", headers={**_bearer(local_only), **_from("192.0.3.10")}
            )
            assert_envelope(claimed, 403, "PERMISSION_DENIED")
            for _ in range(2):  # round robin: each replica answers
                ignored = await http.get(
                    calls, headers={**_bearer(local_only), **_from("192.0.3.10")}
                )
                assert ignored.status_code == 200, ignored.text
    finally:
        nginx.destroy()


async def test_the_upstream_never_receives_a_credential(gateway: Gateway) -> None:
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        jwt = await _session(http, gateway, tenant)
        marker = uuid.uuid4().hex
        response = await http.get(
            f"{gateway.url}/v1.0/calls?page_size=5&accesskey={tenant.token}&m={marker}"
            f"&acc%65sskey={tenant.token}&accesskey={tenant.token}",
            headers={"Cookie": f"theme=dark; token=; accesskey={tenant.token}; lang=en"},
        )
        assert response.status_code == 200, response.text
        session = await http.get(
            f"{gateway.url}/v1.0/calls?m={marker}",
            headers={"Cookie": f"token={jwt}; theme=light", "Authorization": f"Bearer {jwt}"},
        )
        assert session.status_code == 200, session.text
        basic = await http.get(
            f"{gateway.url}/v1.0/calls?m={marker}&accesskey={tenant.token}",
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        )
        assert basic.status_code == 200, basic.text
    mine = [r for r in gateway.calls.received() if marker in r["query"]]
    assert len(mine) == 3
    first, second, third = (dict(r["headers"]) for r in mine)
    assert mine[0]["query"] == f"page_size=5&m={marker}"
    assert first["cookie"] == "theme=dark; lang=en"
    assert first["x-keyplane-token-prefix"] == tenant.token[:11]
    assert first["x-keyplane-request-id"] == response.headers["x-request-id"]
    assert second["cookie"] == "theme=light"
    assert "authorization" not in second
    assert second["x-keyplane-identity-type"] == "agent"
    assert third["authorization"] == "Basic dXNlcjpwYXNz"  # not keyplane's: kept
    everything = json.dumps(gateway.calls.received())
    for secret in gateway.secrets:
        assert secret not in everything
    for header in ("x-original-uri", "x-keyplane-upstream-uri", "x-keyplane-error"):
        assert header not in everything


async def test_no_spelling_of_a_credential_reaches_the_api(gateway: Gateway) -> None:
    """What keyplane does not read, but the API's framework might, is removed too: names in
    any case, after repeated percent-decoding, after ``;``; cookies in any case and
    comma-joined; keyplane's own cookies; an Authorization that holds a credential."""
    tenant = await _tenant(gateway)
    t = tenant.token
    async with httpx.AsyncClient(timeout=10) as http:
        jwt = await _session(http, gateway, tenant)
        marker = uuid.uuid4().hex
        calls = f"{gateway.url}/v1.0/calls"
        basic_key = "Basic " + base64.b64encode(f"user:{t}".encode()).decode()
        sent: list[dict[str, Any]] = [
            {
                "url": f"{calls}?m={marker}&AccessKey={t}&ACCESSKEY={t}&x=1;accesskey={t}"
                f"&%2574oken={jwt}&TOKEN[]={jwt}&page=2",
                "headers": _bearer(t),
            },
            {"url": f"{calls}?m={marker}", "headers": {**_bearer(t), "Cookie": f"AccessKey={t}"}},
            {
                "url": f"{calls}?m={marker}",
                "headers": {**_bearer(t), "Cookie": f"a=1, accesskey={t}; Token={jwt}"},
            },
            {
                "url": f"{calls}?m={marker}",
                "headers": {
                    **_bearer(t),
                    "Cookie": f"keyplane_admin={jwt}; keyplane_admin_login=x; lang=en",
                },
            },
            {
                "url": f"{calls}?m={marker}",
                "headers": {"Cookie": f"accesskey={t}", "Authorization": f"Token {t}"},
            },
            {
                "url": f"{calls}?m={marker}",
                "headers": {"Cookie": f"accesskey={t}", "Authorization": basic_key},
            },
            {
                "url": f"{calls}?m={marker}",
                "headers": {"Cookie": f"accesskey={t}", "Authorization": f"JWT {jwt}"},
            },
        ]
        for request in sent:
            response = await http.get(**request)
            assert response.status_code == 200, (request, response.text)
    mine = [r for r in gateway.calls.received() if marker in r["query"]]
    assert len(mine) == len(sent)
    headers = [dict(r["headers"]) for r in mine]
    wrong = []  # every form that passed a credential on, not only the first
    if mine[0]["query"] != f"m={marker}&x=1&page=2":
        wrong.append(("query", mine[0]["query"]))
    for received, cookie in zip(headers[1:4], [None, "a=1", "lang=en"], strict=True):
        if received.get("cookie") != cookie:
            wrong.append(("cookie", received.get("cookie")))
    wrong.extend(("authorization", h["authorization"]) for h in headers[4:] if "authorization" in h)
    everything = json.dumps(mine)
    wrong.extend(
        ("somewhere", secret)
        for secret in (t, jwt, t[3:], "keyplane_admin", "x-keyplane-upstream")
        if secret in everything
    )
    assert wrong == []


async def test_metrics_are_denied_even_with_a_valid_key(gateway: Gateway) -> None:
    tenant = await _tenant(gateway)
    marker = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=10) as http:
        for path in (f"/metrics?m={marker}", f"//metrics?m={marker}", f"/%6Detrics?m={marker}"):
            response = await http.get(f"{gateway.url}{path}", headers=_bearer(tenant.token))
            assert response.status_code == 403, (path, response.text)
        allowed = await http.get(
            f"{gateway.url}/v1.0/calls?m={marker}", headers=_bearer(tenant.token)
        )
        assert allowed.status_code == 200, allowed.text
    assert [r["query"] for r in gateway.calls.received() if marker in r["query"]] == [f"m={marker}"]


async def test_forged_identity_headers_are_overwritten(gateway: Gateway) -> None:
    tenant, other = await _tenant(gateway), await _tenant(gateway)
    forged = {
        "X-Keyplane-Customer-Id": str(other.customer_id),
        "X-Keyplane-Identity-Type": "agent",
        "X-Keyplane-Identity-Id": str(other.key_id),
        "X-Keyplane-Permission": "65535",
        "X-Keyplane-Token-Prefix": "vb_forged00",
    }
    marker = uuid.uuid4().hex
    async with httpx.AsyncClient(timeout=10) as http:
        posted = await http.post(
            f"{gateway.url}/v1.0/calls?m={marker}",
            json={"source": "a", "destination": "b"},
            headers={**forged, **_bearer(tenant.token)},
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["customer_id"] == str(tenant.customer_id)
        unauthenticated = await http.get(f"{gateway.url}/v1.0/calls?m={marker}", headers=forged)
        assert_envelope(unauthenticated, 401, "AUTHENTICATION_REQUIRED")
        # Another customer's key sees that customer's calls, not these.
        theirs = await http.get(f"{gateway.url}/v1.0/calls", headers=_bearer(other.token))
        assert theirs.json()["result"] == []
    received = [dict(r["headers"]) for r in gateway.calls.received() if marker in r["query"]]
    assert len(received) == 1  # the refused request never reached the API
    assert received[0]["x-keyplane-customer-id"] == str(tenant.customer_id)
    assert received[0]["x-keyplane-identity-type"] == "accesskey"
    assert received[0]["x-keyplane-identity-id"] == str(tenant.key_id)
    assert received[0]["x-keyplane-permission"] == str(int(Permission.CUSTOMER_ADMIN))
    assert received[0]["x-keyplane-token-prefix"] == tenant.token[:11]


async def _expire(gateway: Gateway, key_id: uuid.UUID) -> None:
    engine = create_engine(gateway.env["KEYPLANE_DATABASE_URL"])
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE accesskeys SET tm_expire = :moment WHERE id = :id"),
                {"moment": datetime.now(UTC) - timedelta(seconds=1), "id": key_id},
            )
    finally:
        await engine.dispose()


async def test_every_refused_form_gets_keyplanes_envelope(gateway: Gateway) -> None:
    tenant, expired, gone = await _tenant(gateway), await _tenant(gateway), await _tenant(gateway)
    await _expire(gateway, expired.key_id)
    async with httpx.AsyncClient(timeout=10) as http:
        deleted = await http.delete(
            f"{gateway.a}/v1.0/accesskeys/{gone.key_id}", headers=_bearer(gone.token)
        )
        assert deleted.status_code == 200, deleted.text
        calls = f"{gateway.url}/v1.0/calls"
        missing = await http.get(calls, headers=_from())
        assert_envelope(missing, 401, "AUTHENTICATION_REQUIRED")
        assert missing.headers.get_list("www-authenticate") == ['Bearer realm="keyplane"']
        unknown = "vb_" + "Q" * 32
        refused: list[dict[str, Any]] = [
            {"url": f"{calls}?accesskey={unknown}"},
            {"url": f"{calls}?accesskey=vb_short"},
            {"url": f"{calls}?accesskey={expired.token}"},
            {"url": f"{calls}?accesskey={gone.token}"},
            {"url": calls, "headers": _bearer(unknown)},
            {"url": calls, "headers": {"Cookie": f"accesskey={unknown}"}},
            {"url": f"{calls}?token=not.a.jwt"},
            {"url": calls, "headers": _bearer("eyJhbGciOiJIUzI1NiJ9." + "e30.x")},
            {"url": calls, "headers": {"Cookie": f"token=x; accesskey={tenant.token}"}},
        ]
        for form in refused:
            headers = {**form.pop("headers", {}), **_from()}
            response = await http.get(**form, headers=headers)
            assert_envelope(response, 401, "INVALID_CREDENTIALS")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["cache-control"] == "no-store"


async def test_429_passes_through_with_retry_after(gateway: Gateway) -> None:
    address = next(_addresses)
    async with httpx.AsyncClient(timeout=10) as http:
        url = f"{gateway.url}/v1.0/calls?accesskey=" + "vb_" + "W" * 32
        statuses = [
            (await http.get(url, headers=_from(address))).status_code for _ in range(FAILURE_BURST)
        ]
        assert statuses == [401] * FAILURE_BURST
        limited = await http.get(url, headers=_from(address))
        assert_envelope(limited, 429, "RATE_LIMIT_EXCEEDED")
        assert int(limited.headers["retry-after"]) >= 1
        # Another address is not affected.
        assert (await http.get(url, headers=_from())).status_code == 401


async def test_a_deleted_key_is_refused_through_the_gateway_on_both_replicas(
    gateway: Gateway,
) -> None:
    tenant = await _tenant(gateway)
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(5):
            created = await http.post(
                f"{gateway.a}/v1.0/accesskeys",
                json={"name": "k", "detail": "", "expire": 86_400},
                headers=_bearer(tenant.token),
            )
            assert created.status_code == 200, created.text
            key_id, token = created.json()["id"], created.json()["token"]
            gateway.secrets.append(token)
            url = f"{gateway.url}/v1.0/calls?accesskey={token}"
            for _ in range(4):  # round robin: both replicas have it in their cache
                assert (await http.get(url)).status_code == 200
            address = next(_addresses)
            deleted = await http.delete(
                f"{gateway.a}/v1.0/accesskeys/{key_id}", headers=_bearer(tenant.token)
            )
            assert deleted.status_code == 200
            since = time.monotonic()
            refusals = 0
            while refusals < 2:  # two in a row: both replicas refuse it
                response = await http.get(url, headers=_from(address))
                if response.status_code == 200:
                    refusals = 0
                else:
                    assert_envelope(response, 401, "INVALID_CREDENTIALS")
                    refusals += 1
                assert time.monotonic() - since < 5.0, "still accepted 5 s after deletion"
            delays.append(time.monotonic() - since)
    sys.stderr.write(f"\nthrough the gateway: worst {max(delays) * 1000:.1f} ms\n")
    assert max(delays) < BOUND


async def test_the_access_log_never_records_a_query_string(gateway: Gateway) -> None:
    tenant = await _tenant(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        assert (
            await http.get(f"{gateway.url}/v1.0/calls?accesskey={tenant.token}")
        ).status_code == 200
        assert (
            await http.get(f"{gateway.url}/v1.0/calls?accesskey=vb_x", headers=_from())
        ).status_code == 401
    log = (gateway.root / "keyplane-gateway.access.log").read_text()
    assert "/v1.0/calls" in log
    assert "?" not in log
    assert "accesskey" not in log
    for path in gateway.nginx.root.glob("*.log"):
        assert tenant.token not in path.read_text()
    assert tenant.token not in (gateway.root / "keyplane-gateway.error.log").read_text()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_keyplane_unreachable_is_503_never_the_api(tmp_path: Path) -> None:
    calls = CallsService(free_port(), tmp_path / "received.jsonl")
    port = free_port()
    # nobody on keyplane's port
    site = templated_recipe([free_port()], calls.port, port, tmp_path, behind_balancer=False)
    nginx = NginxServer([], port=port, site=site)
    try:
        calls.start()
        nginx.start()
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{nginx.url}/v1.0/calls?accesskey=" + "vb_" + "U" * 32)
        assert_envelope_unavailable(response)
        assert calls.received() == []
    finally:
        nginx.destroy()
        calls.stop()


def assert_envelope_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["reason"] == "UNAVAILABLE"
    assert error["request_id"]


async def test_refusals_stay_intact_when_a_replica_is_down(gateway: Gateway) -> None:
    """nginx then reports keyplane's status as "502, 401": the last one counts."""
    port = free_port()
    root = gateway.root / "one-down"
    root.mkdir()
    site = templated_recipe(
        [free_port(), gateway.replicas[0].port],
        gateway.calls.port,
        port,
        root,
        behind_balancer=True,
    )
    nginx = NginxServer([], port=port, site=site)
    try:
        nginx.start()
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(4):  # round robin: some start at the dead one
                response = await http.get(f"{nginx.url}/v1.0/calls", headers=_from())
                assert_envelope(response, 401, "AUTHENTICATION_REQUIRED")
    finally:
        nginx.destroy()
