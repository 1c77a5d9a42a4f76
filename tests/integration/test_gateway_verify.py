"""GET /auth/verify (contract section 8): the same rules as the API, for gateways."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Permission
from keyplane.services.container import Services
from tests.conftest import replica
from tests.factories import OPERATOR, Factory, bearer, fake_token, login
from tests.integration.conftest import PASSWORD, assert_security_headers
from tests.logcapture import captured_logging

VERIFY = "/auth/verify"


def assert_refused(response: httpx.Response, status: int, reason: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["reason"] == reason
    assert error["request_id"] == response.headers["x-request-id"]
    # The envelope also travels in a header, for nginx's auth_request.
    assert json.loads(response.headers["x-keyplane-error"]) == response.json()
    assert_security_headers(response)
    assert not any(name.startswith("x-keyplane-customer") for name in response.headers)
    return dict(error)


def assert_allowed_key(
    response: httpx.Response, key_id: uuid.UUID, customer_id: uuid.UUID, token: str
) -> None:
    assert response.status_code == 200, response.text
    assert response.content == b""
    headers = response.headers
    assert headers["x-keyplane-customer-id"] == str(customer_id)
    assert headers["x-keyplane-identity-type"] == "accesskey"
    assert headers["x-keyplane-identity-id"] == str(key_id)
    assert headers["x-keyplane-permission"] == str(int(Permission.CUSTOMER_ADMIN))
    assert headers["x-keyplane-token-prefix"] == token[:11]
    assert headers["x-keyplane-request-id"] == headers["x-request-id"]
    assert_security_headers(response)
    assert token not in str(headers.raw)


async def test_no_credential_is_authentication_required(client: httpx.AsyncClient) -> None:
    response = await client.get(VERIFY, headers={"X-Request-ID": "gw-req-1"})
    assert_refused(response, 401, "AUTHENTICATION_REQUIRED")
    assert response.headers["x-request-id"] == "gw-req-1"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_accesskey_form_is_allowed(client: httpx.AsyncClient, factory: Factory) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    forms = [
        {"headers": bearer(token)},
        {"headers": {"Cookie": f"accesskey={token}"}},
        {"params": {"accesskey": token}},
        {"headers": {"X-Original-URI": f"/v1.0/calls?accesskey={token}"}},
        {
            "headers": {
                "X-Forwarded-Uri": f"/v1.0/calls?accesskey={token}",
                "X-Forwarded-Method": "POST",
            }
        },
    ]
    for form in forms:
        response = await client.get(VERIFY, **form)  # type: ignore[arg-type]
        assert_allowed_key(response, key.id, customer.id, token)


async def test_envoy_path_prefix_and_original_method(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    response = await client.post(f"{VERIFY}/v1.0/calls?page=2&accesskey={token}", content=b"")
    assert_allowed_key(response, key.id, customer.id, token)
    assert response.headers["x-keyplane-upstream-uri"] == "/v1.0/calls?page=2"


async def test_session_tokens_are_allowed_as_agents(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, permission=int(Permission.CUSTOMER_MANAGER))
    jwt = await login(client, agent.username, PASSWORD)
    for form in (
        {"headers": bearer(jwt)},
        {"headers": {"Cookie": f"token={jwt}"}},
        {"headers": {"X-Original-URI": f"/v1.0/calls?token={jwt}"}},
    ):
        response = await client.get(VERIFY, **form)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        assert response.headers["x-keyplane-identity-type"] == "agent"
        assert response.headers["x-keyplane-identity-id"] == str(agent.id)
        assert response.headers["x-keyplane-permission"] == str(int(Permission.CUSTOMER_MANAGER))
        assert "x-keyplane-token-prefix" not in response.headers


async def test_upstream_forms_carry_no_credential(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    _, token = await factory.accesskey(customer)
    response = await client.get(
        VERIFY,
        headers={
            "X-Original-URI": (
                f"/v1.0/calls?a=1&accesskey={token}&b=x%20y&acc%65sskey={token}&token="
            ),
            "Cookie": f"theme=dark; accesskey={token}; token=; lang=en",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-keyplane-upstream-uri"] == "/v1.0/calls?a=1&b=x%20y"
    assert response.headers["x-keyplane-upstream-cookie"] == "theme=dark; lang=en"
    clean = await client.get(VERIFY, headers={"X-Original-URI": "/v1.0/calls?a=1", **bearer(token)})
    assert "x-keyplane-upstream-uri" not in clean.headers  # unchanged: the gateway keeps its own
    assert "x-keyplane-upstream-cookie" not in clean.headers


@pytest.mark.parametrize("case", ["unknown", "malformed", "deleted", "expired", "customer_deleted"])
async def test_refused_keys(
    client: httpx.AsyncClient, factory: Factory, services: Services, clock: FrozenClock, case: str
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer, expire=86_400)
    if case == "unknown":
        token = fake_token("Q")
    elif case == "malformed":
        token = "vb_" + "short"
    elif case == "deleted":
        await services.accesskeys.delete(OPERATOR, key.id)
    elif case == "expired":
        clock.advance(86_400)
    else:
        await services.customers.delete_customer(OPERATOR, customer.id)
    response = await client.get(
        VERIFY, headers={"X-Original-URI": f"/v1.0/calls?accesskey={token}"}
    )
    error = assert_refused(response, 401, "INVALID_CREDENTIALS")
    assert token not in json.dumps(error)


async def test_customer_rate_limit_is_429_with_retry_after(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        replica(
            tmp_path,
            database_url,
            clock,
            ratelimit_customer_burst=1,
            ratelimit_customer_per_second=0.01,
        ) as running,
        running.client() as http,
    ):
        customer = await Factory(running.services).customer()
        _, token = await Factory(running.services).accesskey(customer)
        first = await http.get(VERIFY, headers=bearer(token))
        assert first.status_code == 200
        second = await http.get(VERIFY, headers=bearer(token))
        assert_refused(second, 429, "RATE_LIMIT_EXCEEDED")
        assert int(second.headers["retry-after"]) >= 1


async def test_failure_budget_applies(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with (
        replica(tmp_path, database_url, clock, ratelimit_auth_failures_burst=2) as running,
        running.client("192.0.2.7") as http,
    ):
        bad = {"X-Original-URI": "/x?accesskey=" + fake_token("Z")}
        assert (await http.get(VERIFY, headers=bad)).status_code == 401
        assert (await http.get(VERIFY, headers=bad)).status_code == 401
        refused = await http.get(VERIFY, headers=bad)
        assert_refused(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert int(refused.headers["retry-after"]) >= 1


async def test_no_log_line_per_verification(client: httpx.AsyncClient, factory: Factory) -> None:
    customer = await factory.customer()
    _, token = await factory.accesskey(customer)
    with captured_logging(level="INFO") as stream:
        assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200
        assert (await client.get(VERIFY)).status_code == 401
        verify_lines = _keyplane_lines(stream.getvalue())
        assert (await client.get("/v1.0/customer", headers=bearer(token))).status_code == 200
    assert verify_lines == []
    # The capture works: the API's own request is in the access log.
    assert [line["logger"] for line in _keyplane_lines(stream.getvalue())] == ["keyplane.access"]


def _keyplane_lines(text: str) -> list[dict[str, str]]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line for line in lines if line.get("logger", "").startswith("keyplane")]


async def test_a_cache_hit_touches_neither_database_nor_redis(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    _, token = await factory.accesskey(customer)
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the database was asked on a cache hit")

    services.database.reader = refuse  # type: ignore[method-assign,assignment]
    assert (await client.get(VERIFY, headers=bearer(token))).status_code == 200


async def test_nginx_uri_wins_over_a_forwarded_uri(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    response = await client.get(
        VERIFY,
        headers={
            "X-Forwarded-Uri": "/v1.0/calls?accesskey=" + fake_token("F"),
            "X-Original-URI": f"/v1.0/calls?accesskey={token}",
        },
    )
    assert_allowed_key(response, key.id, customer.id, token)


async def test_an_unexpected_error_is_a_500_envelope(
    client: httpx.AsyncClient, services: Services
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    services.auth.authenticate = broken  # type: ignore[method-assign,assignment]
    with captured_logging(level="INFO") as stream:
        response = await client.get(VERIFY, headers=bearer(fake_token()))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["reason"] == "INTERNAL_ERROR"
    assert error["request_id"] == response.headers["x-request-id"]
    assert "boom" not in response.text
    logged = _keyplane_lines(stream.getvalue())
    assert [line["event"] for line in logged] == ["unhandled_error"]
    assert fake_token() not in stream.getvalue()
