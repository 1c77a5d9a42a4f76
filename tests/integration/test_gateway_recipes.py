"""The Traefik and Envoy recipes: /auth/verify driven with exactly what each proxy sends.

Neither proxy is packaged by Debian, so the proxies' documented behaviour is
replayed from the shipped files (examples/traefik/keyplane.toml,
examples/envoy/envoy.yaml): which client headers reach keyplane, which of
keyplane's answer headers reach the API or the client.

- Traefik forwardAuth: ``GET`` to ``address`` with the client headers named in
  ``authRequestHeaders`` and ``X-Forwarded-Method/-Proto/-Host/-Uri/-For``; on
  2xx it deletes each ``authResponseHeaders`` name and every header matching
  ``authResponseHeadersRegex`` from the request, then copies keyplane's; any
  other answer goes to the client as it is.
- Envoy ext_authz (HTTP): the original method, to ``path_prefix`` + the original
  path and query, with ``Host``, ``Authorization``, ``Content-Length: 0`` and the
  ``allowed_headers``; on 200 the ``allowed_upstream_headers`` are set on the
  request; otherwise the client gets keyplane's status, body and the
  ``allowed_client_headers``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from keyplane.domain.clock import FrozenClock
from tests.conftest import replica
from tests.factories import Factory, bearer, fake_token
from tests.integration.conftest import Tenant, create_key

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FORGED = {"X-Keyplane-Customer-Id": "00000000-0000-0000-0000-00000000beef", "X-Keyplane-Extra": "1"}


def _canonical(name: str) -> str:
    """Go's http.CanonicalHeaderKey, which Traefik's regex sees."""
    return "-".join(part.capitalize() for part in name.split("-"))


class Traefik:
    def __init__(self) -> None:
        config = tomllib.loads((EXAMPLES / "traefik" / "keyplane.toml").read_text())
        middlewares = config["http"]["middlewares"]
        self.forward: dict[str, Any] = middlewares["keyplane-verify"]["forwardAuth"]
        self.custom: dict[str, str] = middlewares["keyplane-hide-credentials"]["headers"][
            "customRequestHeaders"
        ]
        router = config["http"]["routers"]["protected-api"]
        assert router["middlewares"] == ["keyplane-verify", "keyplane-hide-credentials"]

    async def send(
        self, http: httpx.AsyncClient, method: str, uri: str, headers: dict[str, str]
    ) -> tuple[httpx.Response, dict[str, str]]:
        """keyplane's answer, and the headers the API would receive (on 2xx)."""
        allowed = {name.lower() for name in self.forward["authRequestHeaders"]}
        check = {k: v for k, v in headers.items() if k.lower() in allowed}
        check.update(
            {
                "X-Forwarded-Method": method,
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example.com",
                "X-Forwarded-Uri": uri,
                "X-Forwarded-For": "203.0.113.5",
            }
        )
        answer = await http.get(urlsplit(self.forward["address"]).path, headers=check)
        upstream = {_canonical(k): v for k, v in headers.items()}
        if not 200 <= answer.status_code < 300:
            return answer, {}
        for name in self.forward["authResponseHeaders"]:
            upstream.pop(_canonical(name), None)
            if name in answer.headers:
                upstream[_canonical(name)] = answer.headers[name]
        pattern = re.compile(self.forward["authResponseHeadersRegex"])
        upstream = {k: v for k, v in upstream.items() if not pattern.match(k)}
        upstream.update(
            {_canonical(k): v for k, v in answer.headers.items() if pattern.match(_canonical(k))}
        )
        for name, value in self.custom.items():  # an empty value removes the header
            upstream.pop(_canonical(name), None)
            if value:
                upstream[_canonical(name)] = value
        return answer, upstream


class Envoy:
    def __init__(self) -> None:
        config = yaml.safe_load((EXAMPLES / "envoy" / "envoy.yaml").read_text())
        manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        filters = manager["typed_config"]["http_filters"]
        names = [f["name"] for f in filters]
        assert names.index("keyplane.drop_forged_identity") < names.index(
            "envoy.filters.http.ext_authz"
        )
        assert names.index("envoy.filters.http.ext_authz") < names.index(
            "keyplane.hide_credentials"
        )
        ext_authz = filters[names.index("envoy.filters.http.ext_authz")]["typed_config"]
        self.service: dict[str, Any] = ext_authz["http_service"]
        assert ext_authz["failure_mode_allow"] is False
        protocol = manager["typed_config"].get("common_http_protocol_options", {})
        self.underscores = protocol.get("headers_with_underscores_action", "ALLOW")

    @staticmethod
    def _names(patterns: list[dict[str, str]], name: str) -> bool:
        return any(
            name == p.get("exact") or name.startswith(p.get("prefix", "\x00")) for p in patterns
        )

    async def send(
        self, http: httpx.AsyncClient, method: str, uri: str, headers: dict[str, str]
    ) -> tuple[httpx.Response, dict[str, str]]:
        """keyplane's answer, and the headers Envoy passes on (to the API or the client)."""
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("x-keyplane-")}
        if self.underscores == "DROP_HEADER":
            headers = {k: v for k, v in headers.items() if "_" not in k}
        allowed = self.service["authorization_request"]["allowed_headers"]["patterns"]
        check = {
            k: v
            for k, v in headers.items()
            if k.lower() == "authorization" or self._names(allowed, k.lower())
        }
        check["Content-Length"] = "0"
        answer = await http.request(method, self.service["path_prefix"] + uri, headers=check)
        response = self.service["authorization_response"]
        key = "allowed_upstream_headers" if answer.status_code == 200 else "allowed_client_headers"
        passed = {
            k: v for k, v in answer.headers.items() if self._names(response[key]["patterns"], k)
        }
        return answer, passed


def assert_identity(upstream: dict[str, str], customer_id: object, key_id: object) -> None:
    lowered = {k.lower(): v for k, v in upstream.items()}
    assert lowered["x-keyplane-customer-id"] == str(customer_id)
    assert lowered["x-keyplane-identity-type"] == "accesskey"
    assert lowered["x-keyplane-identity-id"] == str(key_id)
    assert "x-keyplane-extra" not in lowered


async def test_traefik_forward_auth(client: httpx.AsyncClient, factory: Factory) -> None:
    traefik = Traefik()
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    forms = [
        ("/v1.0/calls?accesskey=" + token, {}),
        ("/v1.0/calls", {"Authorization": f"Bearer {token}"}),
        ("/v1.0/calls", {"Cookie": f"accesskey={token}; theme=dark"}),
    ]
    for uri, headers in forms:
        answer, upstream = await traefik.send(
            client, "POST", uri, {**headers, **FORGED, "X-Original-URI": "/x"}
        )
        assert answer.status_code == 200, answer.text
        assert_identity(upstream, customer.id, key.id)
        assert "Authorization" not in upstream
        assert "Cookie" not in upstream
        assert not any(name.startswith("X-Keyplane-Upstream") for name in upstream)
        assert token not in json.dumps(upstream)

    refused, _ = await traefik.send(client, "GET", "/v1.0/calls?accesskey=" + fake_token(), {})
    assert refused.status_code == 401
    assert refused.json()["error"]["reason"] == "INVALID_CREDENTIALS"
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_envoy_ext_authz(client: httpx.AsyncClient, factory: Factory) -> None:
    envoy = Envoy()
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    answer, upstream = await envoy.send(
        client,
        "DELETE",
        f"/v1.0/calls/7?accesskey={token}&page=2",
        {"Cookie": "theme=dark", "X-Request-ID": "envoy-1", **FORGED},
    )
    assert answer.status_code == 200, answer.text
    assert_identity(upstream, customer.id, key.id)
    # What the hide_credentials filter copies over the request:
    assert upstream["x-keyplane-upstream-uri"] == "/v1.0/calls/7?page=2"
    assert upstream["x-keyplane-upstream-cookie"] == "theme=dark"
    assert upstream["x-keyplane-request-id"] == "envoy-1"

    answer, passed = await envoy.send(client, "GET", "/v1.0/calls", {})
    assert answer.status_code == 401
    assert answer.json()["error"]["reason"] == "AUTHENTICATION_REQUIRED"
    assert passed["www-authenticate"].startswith("Bearer")
    assert passed["content-type"] == "application/json"


async def test_429_reaches_the_client_through_both(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        replica(tmp_path, database_url, clock, ratelimit_auth_failures_burst=1) as running,
        running.client("203.0.113.5") as http,
    ):
        bad = "/v1.0/calls?accesskey=" + fake_token("N")
        first, _ = await Traefik().send(http, "GET", bad, {})
        assert first.status_code == 401
        limited, _ = await Traefik().send(http, "GET", bad, {})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["reason"] == "RATE_LIMIT_EXCEEDED"
        answer, passed = await Envoy().send(http, "GET", bad, {})
        assert answer.status_code == 429
        assert int(passed["retry-after"]) >= 1
        assert passed["ratelimit-limit"] == "1"


async def test_what_the_api_may_run_a_request_as_reaches_keyplane_through_both(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A key allowed GET and POST on /v1.0/calls: a POST that the API behind would
    run as DELETE (an override header, ``_method``, a form body) is refused."""
    calls_only = [{"methods": ["GET", "POST"], "path_prefix": "/v1.0/calls"}]
    auth = bearer((await create_key(client, tenant.auth, scopes=calls_only))["token"])
    traefik, envoy = Traefik(), Envoy()
    for proxy in (traefik, envoy):
        for uri, headers in [
            ("/v1.0/calls/1", {"X-HTTP-Method-Override": "DELETE"}),
            ("/v1.0/calls/1", {"X-HTTP-Method": "DELETE"}),
            ("/v1.0/calls/1", {"X-Method-Override": "DELETE"}),
            ("/v1.0/calls/1?_method=DELETE", {}),
            ("/v1.0/calls/1", {"Content-Type": "application/x-www-form-urlencoded"}),
            ("/v1.0/calls/1", {"Content-Type": "multipart/form-data; boundary=x"}),
            ("/v1.0/calls/..;/accesskeys", {}),
        ]:
            answer, _ = await proxy.send(client, "POST", uri, {**auth, **headers})
            assert answer.status_code == 403, (proxy, uri, headers, answer.text)
            assert answer.json()["error"]["reason"] == "PERMISSION_DENIED"
        allowed, _ = await proxy.send(
            client, "POST", "/v1.0/calls/1", {**auth, "Content-Type": "application/json"}
        )
        assert allowed.status_code == 200, allowed.text
    # Envoy drops a header spelt with "_" (Rack and PHP would read X_HTTP_METHOD_OVERRIDE
    # as the override), as nginx does: neither keyplane nor the API receives it.
    assert envoy.underscores == "DROP_HEADER"


async def test_no_authorization_holding_a_credential_passes_either_recipe(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """Envoy's filter copies X-Keyplane-Upstream-Authorization over the client's header
    (absent or empty: removed); Traefik removes the header and every rewrite hint."""
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    cookie = {"Cookie": f"accesskey={token}"}
    for authorization, forwarded in (
        (f"Token {token}", ""),
        (f"Bearer {token}", ""),
        ("Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"),
    ):
        headers = {**cookie, "Authorization": authorization}
        answer, passed = await Envoy().send(client, "GET", "/v1.0/calls", headers)
        assert answer.status_code == 200, answer.text
        assert passed["x-keyplane-upstream-authorization"] == forwarded
        answer, upstream = await Traefik().send(client, "GET", "/v1.0/calls", headers)
        assert answer.status_code == 200, answer.text
        assert_identity(upstream, customer.id, key.id)
        assert "Authorization" not in upstream
        assert not any(name.startswith("X-Keyplane-Upstream") for name in upstream)
    envoy = (EXAMPLES / "envoy" / "envoy.yaml").read_text()
    assert 'headers:get("x-keyplane-upstream-authorization")' in envoy
    assert 'headers:remove("x-keyplane-upstream-authorization")' in envoy


def test_traefik_and_envoy_never_route_metrics() -> None:
    traefik = tomllib.loads((EXAMPLES / "traefik" / "keyplane.toml").read_text())
    routers = traefik["http"]["routers"]
    assert [router["rule"] for router in routers.values()] == [
        "PathPrefix(`/`) && !Path(`/metrics`)"
    ]
    envoy = yaml.safe_load((EXAMPLES / "envoy" / "envoy.yaml").read_text())
    (listener,) = envoy["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (host,) = manager["route_config"]["virtual_hosts"]
    first, *rest = host["routes"]
    assert first == {"match": {"path": "/metrics"}, "direct_response": {"status": 403}}
    assert all("direct_response" not in route for route in rest)
