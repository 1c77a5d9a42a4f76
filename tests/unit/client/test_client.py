"""keyplane.client against httpx.MockTransport: requests, answers, errors, retries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import keyplane.client
from keyplane.client import (
    Accesskey,
    AccesskeyIdentity,
    Agent,
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    UnavailableError,
)
from keyplane.client import _client as sync_module

BASE = "http://keyplane.test"
TOKEN = "vb_" + "A" * 32
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.e30.c2ln"
KEY_ID = "2f1f8f7e-9b3d-4c60-8465-b69e9f28b6dc"
CUSTOMER_ID = "a1d9b2cd-4578-4b23-91b6-5f5ec4a2f840"


def key_json(key_id: str = KEY_ID, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": key_id,
        "customer_id": CUSTOMER_ID,
        "name": "ci",
        "detail": "",
        "token_prefix": "vb_AAAAAAAA",
        "tm_expire": "2027-12-01T10:15:30.123456Z",
        "tm_create": "2026-12-01T10:15:30.123456Z",
        "tm_update": None,
        "tm_delete": None,
    }
    data.update(extra)
    return data


def envelope(code: int, status: str, reason: str, message: str = "no") -> httpx.Response:
    body = {"error": {"status": status, "reason": reason, "message": message, "request_id": "r-1"}}
    return httpx.Response(code, json=body, headers={"X-Request-ID": "r-1"})


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **options: Any) -> Client:
    options.setdefault("accesskey", TOKEN)
    return Client(BASE, transport=httpx.MockTransport(handler), **options)


def test_public_surface_is_exactly_all() -> None:
    public = {name for name in dir(keyplane.client) if not name.startswith("_")}
    assert public == set(keyplane.client.__all__)
    for name in keyplane.client.__all__:
        assert getattr(keyplane.client, name).__module__.startswith("keyplane.client._")


def test_credential_goes_in_the_header_never_in_the_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=key_json())

    with client(handler) as c:
        key = c.accesskeys.get(KEY_ID)
    assert key.id == uuid.UUID(KEY_ID)
    assert seen[0].headers["authorization"] == "Bearer " + TOKEN
    assert TOKEN not in str(seen[0].url)
    assert seen[0].url.path == f"/v1.0/accesskeys/{KEY_ID}"


def test_credential_in_the_url_only_when_asked() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=key_json())

    with client(handler, credentials_in_url=True) as c:
        c.accesskeys.get(KEY_ID)
    with client(handler, accesskey=None, token=JWT, credentials_in_url=True) as c:
        c.accesskeys.get(KEY_ID)
    assert seen[0].url.params["accesskey"] == TOKEN
    assert "authorization" not in seen[0].headers
    assert seen[1].url.params["token"] == JWT


def test_both_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        Client(BASE, accesskey=TOKEN, token=JWT)


def test_models_are_typed_and_hide_the_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"name": "ci", "detail": "d", "expire": 86400}
        return httpx.Response(200, json=key_json(token=TOKEN))

    with client(handler) as c:
        created = c.accesskeys.create(name="ci", detail="d", expire=86400)
    assert isinstance(created, Accesskey)
    assert created.token == TOKEN
    assert TOKEN not in repr(created)
    assert created.tm_expire == datetime(2027, 12, 1, 10, 15, 30, 123456, tzinfo=UTC)
    assert created.tm_update is None
    assert created.state == "active"
    assert created.raw["token_prefix"] == "vb_AAAAAAAA"


def test_paging_is_a_lazy_iterator() -> None:
    pages = {
        None: ([key_json(str(uuid.uuid4())) for _ in range(2)], "t1"),
        "t1": ([key_json(str(uuid.uuid4())) for _ in range(2)], "t2"),
        "t2": ([key_json(str(uuid.uuid4()))], "t3"),
    }
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("page_token")
        asked.append(token)
        assert request.url.params["page_size"] == "2"
        result, following = pages[token]
        return httpx.Response(200, json={"result": result, "next_page_token": following})

    with client(handler) as c:
        keys = c.accesskeys.iter(page_size=2)
        first = next(keys)
        assert asked == [None]  # one page fetched for the first key
        rest = list(keys)
    assert [first.id, *(k.id for k in rest)] == [
        uuid.UUID(k["id"]) for token in (None, "t1", "t2") for k in pages[token][0]
    ]
    assert asked == [None, "t1", "t2"]  # a short page is the last: no empty page fetched


def test_errors_carry_status_reason_and_request_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return envelope(409, "FAILED_PRECONDITION", "STATE_INVALID", "deleted")
        return envelope(404, "NOT_FOUND", "RESOURCE_NOT_FOUND")

    with client(handler) as c:
        with pytest.raises(NotFoundError) as missing:
            c.accesskeys.get(KEY_ID)
        with pytest.raises(ConflictError) as conflict:
            c.accesskeys.delete(KEY_ID)
    assert missing.value.status_code == 404
    assert missing.value.status == "NOT_FOUND"
    assert missing.value.reason == "RESOURCE_NOT_FOUND"
    assert missing.value.request_id == "r-1"
    assert conflict.value.reason == "STATE_INVALID"
    assert TOKEN not in str(missing.value)


def test_an_answer_without_envelope_still_raises_sensibly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>bad gateway</html>", headers={"Retry-After": "999"})

    with client(handler) as c, pytest.raises(UnavailableError) as caught:
        c.customer.get()
    assert caught.value.reason == "HTTP_503"
    assert caught.value.retry_after == 999.0


def test_an_id_cannot_change_the_path() -> None:
    with client(lambda request: httpx.Response(500)) as c, pytest.raises(ValueError, match="UUID"):
        c.accesskeys.get("../customer")


def test_retries_429_and_503_honouring_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_module.time, "sleep", waits.append)
    answers = [
        envelope(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"),
        envelope(503, "UNAVAILABLE", "SERVICE_UNAVAILABLE"),
        httpx.Response(200, json=key_json()),
    ]
    answers[0].headers["Retry-After"] = "2"

    with client(lambda request: answers.pop(0)) as c:
        key = c.accesskeys.get(KEY_ID)
    assert key.name == "ci"
    assert waits == [2.0, 1.0]  # Retry-After, then the backoff of the second attempt


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_module.time, "sleep", waits.append)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        response = envelope(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
        response.headers["Retry-After"] = "1"
        return response

    with client(handler, max_retries=2) as c, pytest.raises(RateLimitedError) as caught:
        c.accesskeys.get(KEY_ID)
    assert calls == 3
    assert waits == [1.0, 1.0]
    assert caught.value.retry_after == 1.0


def test_a_retry_after_beyond_the_bound_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sync_module.time, "sleep", waits.append)

    def handler(request: httpx.Request) -> httpx.Response:
        response = envelope(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
        response.headers["Retry-After"] = "3600"
        return response

    with client(handler, max_retry_wait=30) as c, pytest.raises(RateLimitedError):
        c.accesskeys.get(KEY_ID)
    assert waits == []


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module.time, "sleep", pytest.fail)
    refused = envelope(401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    with client(lambda r: refused) as c, pytest.raises(AuthenticationError):
        c.accesskeys.get(KEY_ID)


def test_timeouts_become_transport_errors_without_the_credential() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with client(handler, credentials_in_url=True) as c, pytest.raises(TransportError) as caught:
        c.accesskeys.get(KEY_ID)
    assert "timed out" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_login_then_uses_the_session() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/login":
            return httpx.Response(200, json={"username": "ann", "token": JWT})
        return httpx.Response(
            200,
            json={
                "id": KEY_ID,
                "customer_id": CUSTOMER_ID,
                "username": "ann",
                "name": "",
                "detail": "",
                "permission": 32,
                "tm_create": "2026-12-01T10:15:30.123456Z",
                "tm_update": None,
                "tm_delete": None,
            },
        )

    with client(handler, accesskey=None) as c:
        result = c.login("ann", "pw")
        me = c.whoami()
    assert JWT not in repr(result)
    assert "authorization" not in seen[0].headers
    assert json.loads(seen[0].content) == {"username": "ann", "password": "pw"}
    assert seen[1].headers["authorization"] == "Bearer " + JWT
    assert isinstance(me, Agent)
    assert me.permission == 32


def test_whoami_of_an_access_key() -> None:
    identity = {
        "type": "accesskey",
        "id": KEY_ID,
        "customer_id": CUSTOMER_ID,
        "name": "ci",
        "token_prefix": "vb_AAAAAAAA",
        "permission": 32,
        "tm_expire": "2027-12-01T10:15:30.123456Z",
    }
    with client(lambda r: httpx.Response(200, json=identity)) as c:
        me = c.whoami()
    assert isinstance(me, AccesskeyIdentity)
    assert me.token_prefix == "vb_AAAAAAAA"


def test_verify_a_given_token() -> None:
    other = "vb_" + "B" * 32

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/auth/verify"
        if request.headers["authorization"] == "Bearer " + other:
            return envelope(401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
        return httpx.Response(
            200,
            headers={
                "X-Keyplane-Customer-Id": CUSTOMER_ID,
                "X-Keyplane-Identity-Type": "accesskey",
                "X-Keyplane-Identity-Id": KEY_ID,
                "X-Keyplane-Permission": "32",
            },
        )

    with client(handler) as c:
        good = c.verify()
        bad = c.verify(other)
    assert good.valid
    assert good.customer_id == uuid.UUID(CUSTOMER_ID)
    assert good.permission == 32
    assert not bad.valid
    assert bad.reason == "INVALID_CREDENTIALS"
    assert bad.status_code == 401


def test_customer_update_keeps_the_fields_not_given() -> None:
    current = {
        "id": CUSTOMER_ID,
        "name": "Acme",
        "email": "ops@example.com",
        "billing_account_id": "00000000-0000-0000-0000-000000000000",
        "metadata": {"rtp_debug": False},
        "email_verified": False,
        "status": "active",
        "identity_verification_status": "none",
        "tm_deletion_scheduled": None,
        "tm_create": "2026-12-01T10:15:30.123456Z",
        "tm_update": None,
        "tm_delete": None,
    }
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            sent.append(json.loads(request.content))
            return httpx.Response(200, json={**current, "detail": "new"})
        return httpx.Response(200, json=current)

    with client(handler) as c:
        updated = c.customer.update(detail="new")
    assert sent == [
        {
            "name": "Acme",
            "detail": "new",
            "email": "ops@example.com",
            "phone_number": "",
            "address": "",
            "webhook_method": "",
            "webhook_uri": "",
        }
    ]
    assert updated.detail == "new"
    assert updated.webhook_uri == ""


async def test_async_client_pages_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("keyplane.client._async_client.anyio.sleep", no_sleep)
    answers = [
        envelope(503, "UNAVAILABLE", "SERVICE_UNAVAILABLE"),
        httpx.Response(200, json={"result": [key_json()], "next_page_token": "x"}),
    ]
    answers[0].headers["Retry-After"] = "0"

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer " + TOKEN
        return answers.pop(0)

    async with AsyncClient(BASE, accesskey=TOKEN, transport=httpx.MockTransport(handler)) as c:
        keys = [key async for key in c.accesskeys.iter(page_size=10)]
    assert [key.name for key in keys] == ["ci"]
    assert waits == [0.0]


def test_a_page_size_above_the_servers_maximum_still_reads_every_page() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["page_size"])
        token = request.url.params.get("page_token")
        if token:
            return httpx.Response(
                200, json={"result": [key_json(str(uuid.uuid4()))], "next_page_token": "z"}
            )
        result = [key_json(str(uuid.uuid4())) for _ in range(100)]
        return httpx.Response(200, json={"result": result, "next_page_token": "p2"})

    with client(handler) as c:
        keys = list(c.accesskeys.iter(page_size=500))
    assert len(keys) == 101
    assert asked == ["100", "100"]
