"""Webhooks over HTTP with a real local receiver: PUT /v1.0/customer sets the hook, the
outbox delivers VoIPBIN's ``{"type", "data"}`` signed with the customer's secret, retries
with backoff, once between replicas, and refuses private addresses unless allowed."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.webhooks import verify_signature
from tests.conftest import Replica, replica
from tests.docs_examples import ROOT, blocks
from tests.factories import Factory, bearer
from tests.integration.conftest import KEYS, assert_error, key_url
from tests.integration.test_voipbin_compat import assert_voipbin
from tests.webhook_receiver import Receiver, running_receiver

# A receiver on loopback answers in milliseconds; the timeout is far above that
# so a loaded machine cannot turn an answer into "no answer" (the test of the
# timeout itself sets a short one).
LOOPBACK = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "webhook_backoff_base": 10.0,
    "webhook_timeout": 60.0,
}
DELIVERIES = "/v1.0/customer/webhook_deliveries"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def one(tmp_path: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Replica]:
    async with replica(tmp_path, database_url, clock, **LOOPBACK) as running:
        yield running


async def tenant_auth(one: Replica) -> dict[str, str]:
    """A customer's key; its creation event, from before any hook, is skipped."""
    factory = Factory(one.services)
    auth = bearer(await factory.identity_token(await factory.customer()))
    await drain(one)
    return auth


async def hook(
    http: httpx.AsyncClient, auth: dict[str, str], uri: str, **more: str
) -> httpx.Response:
    return await http.put(
        "/v1.0/customer", json={"name": "acme", "webhook_uri": uri, **more}, headers=auth
    )


async def drain(*replicas: Replica) -> None:
    """Deliver everything due now, from every replica at once, until nothing is left."""
    for _ in range(50):
        leased = await asyncio.gather(*(r.services.dispatcher.dispatch_once() for r in replicas))
        if not any(leased):
            return
    raise AssertionError("the outbox did not drain")


async def test_put_customer_is_voipbins_and_sets_the_hook(one: Replica, receiver: Receiver) -> None:
    auth = await tenant_auth(one)
    async with one.client() as http:
        response = await hook(
            http,
            auth,
            receiver.url,
            detail="d",
            email="ops@example.com",
            phone_number="+821012345678",
            address="Seoul",
            webhook_method="put",
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert_voipbin(body, "CustomerManagerCustomer")
        assert body["webhook_uri"] == receiver.url
        assert body["webhook_method"] == "PUT"
        assert body["phone_number"] == "+821012345678"
        assert body["tm_update"] is not None
        assert (await http.get("/v1.0/customer", headers=auth)).json() == body
        # Every field is replaced, as in VoIPBIN: left out, the hook is removed.
        cleared = await http.put("/v1.0/customer", json={"name": "acme"}, headers=auth)
        assert "webhook_uri" not in cleared.json()
        assert "phone_number" not in cleared.json()


@pytest.mark.parametrize(
    ("uri", "method", "reason"),
    [
        ("ftp://example.com/x", "", "INVALID_WEBHOOK_URI"),
        ("http://user:pw@example.com/x", "", "INVALID_WEBHOOK_URI"),
        ("/relative", "", "INVALID_WEBHOOK_URI"),
        ("http://10.1.2.3/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://[::1]/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://169.254.169.254/latest", "", "INVALID_WEBHOOK_URI"),
        ("https://example.com/hook", "GET", "INVALID_WEBHOOK_METHOD"),
        # Each of these was a 500 (the URL parser raised) or was stored to fail at delivery.
        ("http://[::1", "", "INVALID_WEBHOOK_URI"),
        ("http://[bad]/", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com/hook\r\nX-Injected: 1", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com/hook\r\n", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com/a hook", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com/\x0bhook", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com:99999/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://example.com:0/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://2130706433/hook", "", "INVALID_WEBHOOK_URI"),
        # IPv6 forms that carry 127.0.0.1, and site-local: Python's is_global calls them global.
        ("http://[::7f00:1]/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://[64:ff9b::7f00:1]/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://[2002:7f00:1::1]/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://[::ffff:0:7f00:1]/hook", "", "INVALID_WEBHOOK_URI"),
        ("http://[fec0::1]/hook", "", "INVALID_WEBHOOK_URI"),
    ],
)
async def test_a_bad_hook_is_400(one: Replica, uri: str, method: str, reason: str) -> None:
    auth = await tenant_auth(one)
    async with one.client() as http:
        response = await hook(http, auth, uri, webhook_method=method)
        stored = (await http.get("/v1.0/customer", headers=auth)).json()
    message = assert_error(response, 400, "INVALID_ARGUMENT", reason)
    assert message.startswith("'webhook_")
    assert uri not in message
    assert "webhook_uri" not in stored  # nothing was changed


@pytest.mark.parametrize(
    "host",
    ["[::7f00:1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]", "[::ffff:0:7f00:1]", "[fec0::1]"],
)
async def test_a_stored_hook_to_a_disguised_private_address_is_refused_when_delivering(
    one: Replica, receiver: Receiver, host: str
) -> None:
    """A URI stored before these rules (written here straight to the store) is refused at
    delivery, at once and for good, although 127.0.0.0/8 is allowed: what the IPv6 address
    carries is not the allowed address."""
    auth = await tenant_auth(one)
    uri = receiver.url.replace("127.0.0.1", host)
    async with one.client() as http:
        customer_id = (await http.get("/v1.0/customer", headers=auth)).json()["id"]
        async with one.services.database.transaction() as repos:
            await repos.customers.update_profile(
                uuid.UUID(customer_id),
                now=one.services.clock.now(),
                webhook_uri=uri,
                webhook_method="POST",
            )
        await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(one)
        result = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
    assert (result["status"], result["attempts"]) == ("failed", 1)
    assert "private" in result["last_error"]
    assert host not in result["last_error"]
    assert receiver.received == []


def documented_receiver() -> dict[str, Any]:
    """The Python receiver of docs/webhooks.md, run as a reader would paste it."""
    path = ROOT / "docs" / "webhooks.md"
    code = [b.text for b in blocks(path) if b.language == "python" and b.marker is None]
    assert len(code) == 1, code
    defined: dict[str, Any] = {"__name__": "receiver"}
    exec(compile(code[0], str(path), "exec"), defined)  # noqa: S102 (the docs' own code)
    return defined


async def test_a_delivery_replayed_under_a_fresh_event_id_is_refused_by_the_documented_receiver(
    one: Replica, receiver: Receiver, clock: FrozenClock
) -> None:
    """A captured delivery sent again within the tolerance: under a fresh Keyplane-Event-Id
    the signature fails; under its own id it is a duplicate, answered and not handled again."""
    clock.set(datetime.now(UTC))  # the documented receiver compares with the real time
    auth = await tenant_auth(one)
    async with one.client() as http:
        await hook(http, auth, receiver.url)
        secret = (await http.get("/v1.0/customer/webhook_secret", headers=auth)).json()["secret"]
        await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(one)
    [captured] = receiver.received
    signed = captured.headers["keyplane-signature"]
    event_id = captured.headers["keyplane-event-id"]
    defined = documented_receiver()
    handled: list[dict[str, Any]] = []
    defined["handle"] = handled.append  # the receiver's own code: remember the event

    assert defined["receive"](secret, signed, event_id, captured.body) == 200
    for _ in range(3):  # the attacker's replays, each under a fresh id
        assert defined["receive"](secret, signed, str(uuid.uuid4()), captured.body) == 400
    assert defined["receive"](secret, signed, event_id, captured.body) == 200  # a duplicate
    assert [event["type"] for event in handled] == ["accesskey_created"]
    now = int(clock.now().timestamp())
    assert verify_signature(secret, signed, event_id, captured.body, now, 300)
    assert not verify_signature(secret, signed, str(uuid.uuid4()), captured.body, now, 300)


async def test_events_arrive_signed_in_voipbins_shape_without_tokens(
    one: Replica, receiver: Receiver
) -> None:
    auth = await tenant_auth(one)
    async with one.client() as http:
        assert (await hook(http, auth, receiver.url)).status_code == 200
        secret = (await http.get("/v1.0/customer/webhook_secret", headers=auth)).json()["secret"]
        created = (await http.post(KEYS, json={"expire": 86_400}, headers=auth)).json()
        await http.put(key_url(created["id"]), json={"name": "renamed"}, headers=auth)
        rotated = (await http.post(f"{key_url(created['id'])}/rotate", headers=auth)).json()
        await drain(one)
        deliveries = (await http.get(DELIVERIES, headers=auth)).json()

    types = [json.loads(item.body)["type"] for item in receiver.received]
    assert types == [
        "accesskey_created",
        "accesskey_updated",
        "accesskey_created",
        "accesskey_rotated",
    ]
    now = int(one.services.clock.now().timestamp())
    for item in receiver.received:
        assert item.method == "POST"
        assert item.headers["content-type"] == "application/json"
        signed, event_id = item.headers["keyplane-signature"], item.headers["keyplane-event-id"]
        assert verify_signature(secret, signed, event_id, item.body, now, 300)
        assert not verify_signature(secret, signed, event_id, item.body + b" ", now, 300)
        payload = json.loads(item.body)
        assert set(payload) == {"type", "data"}
        assert_voipbin(payload["data"], "CustomerManagerAccesskey")
        assert "token" not in payload["data"]
        assert item.headers["idempotency-key"] == item.headers["keyplane-event-id"]
        everything = item.body.decode() + json.dumps(item.headers)
        for token in (created["token"], rotated["token"], auth["Authorization"][7:]):
            assert token not in everything
    assert [d["status"] for d in deliveries["result"]] == ["delivered"] * 4 + ["skipped"]
    ids = {item.headers["keyplane-event-id"] for item in receiver.received}
    assert {d["id"] for d in deliveries["result"][:4]} == ids


async def test_a_failing_receiver_gets_retries_with_backoff(
    one: Replica, receiver: Receiver, clock: FrozenClock
) -> None:
    auth = await tenant_auth(one)
    receiver.failures = [500, 503]
    async with one.client() as http:
        await hook(http, auth, receiver.url)
        await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(one)
        first = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
        assert (first["status"], first["attempts"], first["last_error"]) == (
            "pending",
            1,
            "HTTP 500",
        )
        assert first["tm_next_attempt"] is not None
        await drain(one)  # not due yet
        assert len(receiver.received) == 1
        clock.advance(10)
        await drain(one)
        second = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
        assert (second["attempts"], second["last_error"]) == (2, "HTTP 503")
        clock.advance(10)
        await drain(one)
        assert len(receiver.received) == 2  # the backoff doubled: 20 s now
        clock.advance(10)
        await drain(one)
        done = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
    assert (done["status"], done["attempts"], done["last_error"]) == ("delivered", 3, "")
    assert len({item.headers["keyplane-event-id"] for item in receiver.received}) == 1
    assert len(receiver.received) == 3


async def test_two_replicas_deliver_each_event_once(
    tmp_path: Path, database_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    async with (
        replica(tmp_path, database_url, clock, **LOOPBACK) as a,
        replica(tmp_path, database_url, clock, fresh=False, **LOOPBACK) as b,
    ):
        auth = await tenant_auth(a)
        async with a.client() as http:
            await hook(http, auth, receiver.url)
            for _ in range(20):
                await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(a, b)
    ids = [item.headers["keyplane-event-id"] for item in receiver.received]
    assert len(set(ids)) == 20  # every event arrived...
    assert len(ids) == 20  # ...once, without even needing the idempotency key


async def test_private_addresses_are_refused_unless_allowed(
    tmp_path: Path, database_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    async with replica(tmp_path, database_url, clock) as strict:
        auth = await tenant_auth(strict)
        async with strict.client() as http:
            literal = await hook(http, auth, receiver.url)
            assert_error(literal, 400, "INVALID_ARGUMENT", "INVALID_WEBHOOK_URI")
            # A name that resolves to loopback is refused when delivering.
            named = receiver.url.replace("127.0.0.1", "localhost")
            assert (await hook(http, auth, named)).status_code == 200
            await http.post(KEYS, json={"expire": 86_400}, headers=auth)
            await drain(strict)
            result = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
    assert result["status"] == "failed"
    assert "private" in result["last_error"]
    assert receiver.received == []


async def test_redirects_are_not_followed_and_slow_receivers_time_out(
    tmp_path: Path, database_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    impatient = {**LOOPBACK, "webhook_timeout": 0.5}
    with running_receiver() as elsewhere:
        receiver.redirect_to = elsewhere.url
        async with replica(tmp_path, database_url, clock, **LOOPBACK) as one:
            auth = await tenant_auth(one)
            async with one.client() as http:
                await hook(http, auth, receiver.url)
                await http.post(KEYS, json={"expire": 86_400}, headers=auth)
                await drain(one)
                redirected = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
        receiver.redirect_to = None
        receiver.hold = threading.Event()  # answers only after the test
        clock.advance(10)
        # Another replica on the same database, with a short timeout, retries it.
        async with replica(tmp_path, database_url, clock, fresh=False, **impatient) as two:
            await drain(two)
            async with two.client() as http:
                slow = (await http.get(DELIVERIES, headers=auth)).json()["result"][0]
        assert elsewhere.received == []
    assert "redirects are not followed" in redirected["last_error"]
    assert redirected["status"] == "pending"
    assert "no answer within 0.5 s" in slow["last_error"]


async def test_events_without_a_hook_are_skipped_and_the_status_is_paged(one: Replica) -> None:
    auth = await tenant_auth(one)
    async with one.client() as http:
        for _ in range(3):
            await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(one)
        page: dict[str, Any] = (
            await http.get(DELIVERIES, params={"page_size": "2"}, headers=auth)
        ).json()
        assert [item["status"] for item in page["result"]] == ["skipped", "skipped"]
        rest = await http.get(
            DELIVERIES, params={"page_token": page["next_page_token"]}, headers=auth
        )
        # Three keys and the tenant's own: four events in all.
        assert len(rest.json()["result"]) == 2
        bad = await http.get(DELIVERIES, params={"page_token": "x"}, headers=auth)
        assert bad.status_code == 400


async def test_the_secret_can_be_replaced(one: Replica, receiver: Receiver) -> None:
    auth = await tenant_auth(one)
    async with one.client() as http:
        old = (await http.get("/v1.0/customer/webhook_secret", headers=auth)).json()["secret"]
        new = (await http.post("/v1.0/customer/webhook_secret", headers=auth)).json()["secret"]
        assert new != old
        assert new.startswith("whsec_")
        assert (await http.get("/v1.0/customer/webhook_secret", headers=auth)).json()[
            "secret"
        ] == new
        await hook(http, auth, receiver.url)
        await http.post(KEYS, json={"expire": 86_400}, headers=auth)
        await drain(one)
    now = int(one.services.clock.now().timestamp())
    signed = receiver.received[0]
    header, event_id = signed.headers["keyplane-signature"], signed.headers["keyplane-event-id"]
    assert verify_signature(new, header, event_id, signed.body, now, 300)
    assert not verify_signature(old, header, event_id, signed.body, now, 300)
