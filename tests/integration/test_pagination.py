"""GET /v1.0/accesskeys: paging (contract section 5, List)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.records import Customer
from keyplane.services.accesskeys import new_accesskey
from keyplane.services.container import Services
from tests.factories import OPERATOR, Factory, bearer, login
from tests.integration.conftest import (
    KEYS,
    PASSWORD,
    Tenant,
    assert_accesskey_shape,
    assert_error,
    fmt,
    parse,
    quick_agent,
)


async def _make_keys(
    factory: Factory, clock: FrozenClock, customer: Customer, count: int, *, step: float
) -> list[str]:
    clock.advance(1)  # after the tenant's own key
    ids = []
    for index in range(count):
        key, _ = await factory.accesskey(customer, name=f"key-{index}")
        ids.append(str(key.id))
        if step:
            clock.advance(step)
    return ids


async def _page(
    client: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> tuple[list[dict[str, Any]], str]:
    response = await client.get(KEYS, params=params, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "next_page_token"}
    return body["result"], body["next_page_token"]


async def _walk(
    client: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item, following next_page_token until an empty page; and the page count."""
    items: list[dict[str, Any]] = []
    token = ""
    pages = 0
    while True:
        query = dict(params)
        if token:
            query["page_token"] = token
        result, token = await _page(client, auth, **query)
        pages += 1
        if not result:
            assert token == "", "an empty page has an empty next_page_token"
            return items, pages
        assert token, "a page with items has a next_page_token"
        items.extend(result)
        assert pages < 1000, "paging does not end"


async def _bulk_keys(services: Services, customer: Customer, count: int) -> None:
    """Many keys in one transaction, a microsecond apart (for page size tests)."""
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    async with services.database.transaction() as repos:
        for index in range(count):
            clock.advance(0.000_001)
            key, _ = new_accesskey(customer.id, f"bulk-{index}", "", 86_400, clock.now())
            await repos.accesskeys.insert(key)


def _assert_newest_first(items: list[dict[str, Any]]) -> None:
    moments = [parse(item["tm_create"]) for item in items]
    assert moments == sorted(moments, reverse=True)


@pytest.mark.parametrize("step", [0.000_001, 0.0, 0.5], ids=["1us", "one-tm_create", "0.5s"])
async def test_paging_yields_every_key_exactly_once(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    factory: Factory,
    tenant: Tenant,
    step: float,
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 260, step=step)
    items, pages = await _walk(client, tenant.auth)
    seen = [item["id"] for item in items]
    assert len(seen) == len(set(seen)), "a key was listed twice"
    assert set(ids) <= set(seen)
    assert len(seen) == 261  # and the tenant's own key
    if step == 0.0:
        assert len({item["tm_create"] for item in items if item["id"] in ids}) == 1
    assert pages == 4  # 100 + 100 + 61, then the empty page
    _assert_newest_first(items)
    for item in items:
        assert_accesskey_shape(item)


async def test_250_keys_sharing_one_tm_create_with_small_pages(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 250, step=0.0)
    items, pages = await _walk(client, tenant.auth, page_size="7")
    seen = [item["id"] for item in items]
    assert len(seen) == len(set(seen)) == 251
    assert set(ids) <= set(seen)
    assert {item["tm_create"] for item in items if item["id"] in ids} == {fmt(clock.now())}
    _assert_newest_first(items)
    assert pages == 251 // 7 + 1 + 1


async def test_newest_first_by_tm_create(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 5, step=1.0)
    result, _ = await _page(client, tenant.auth)
    assert [item["id"] for item in result] == [*reversed(ids), result[-1]["id"]]
    assert result[-1]["id"] not in ids  # the tenant's own key, the oldest


@pytest.mark.parametrize("size", [1, 2, 37, 99, 100])
async def test_page_size_in_range_is_honoured(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    size: int,
) -> None:
    await _bulk_keys(services, tenant.customer, 104)
    result, token = await _page(client, tenant.auth, page_size=str(size))
    assert len(result) == size
    assert token


@pytest.mark.parametrize("size", ["0", "101", "-5", "", "1000000", "+500", "9" * 30])
async def test_page_size_out_of_range_means_100(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, size: str
) -> None:
    await _bulk_keys(services, tenant.customer, 104)
    result, _ = await _page(client, tenant.auth, page_size=size)
    assert len(result) == 100


@pytest.mark.parametrize("size", ["abc", "1.5", "1e2", " ", "0x10", "1 0"])
async def test_page_size_that_is_not_an_integer_is_400(
    client: httpx.AsyncClient, tenant: Tenant, size: str
) -> None:
    response = await client.get(KEYS, params={"page_size": size}, headers=tenant.auth)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_PARAMETER")


async def test_default_page_size_is_100(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    await _bulk_keys(services, tenant.customer, 104)
    result, _ = await _page(client, tenant.auth)
    assert len(result) == 100


async def test_page_size_one_walks_everything(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 6, step=0.0)
    items, pages = await _walk(client, tenant.auth, page_size="1")
    assert set(ids) <= {item["id"] for item in items}
    assert len(items) == 7
    assert pages == 8


async def test_voipbin_timestamp_cursor_is_accepted(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 10, step=1.0)
    newest_first = list(reversed(ids))
    first, _ = await _page(client, tenant.auth, page_size="4")
    assert [item["id"] for item in first] == newest_first[:4]
    # VoIPBIN clients pass the last item's tm_create as the cursor.
    second, token = await _page(
        client, tenant.auth, page_size="4", page_token=first[-1]["tm_create"]
    )
    assert [item["id"] for item in second] == newest_first[4:8]
    assert token
    rest, _ = await _page(client, tenant.auth, page_token=second[-1]["tm_create"])
    assert [item["id"] for item in rest][:2] == newest_first[8:]
    assert len(rest) == 3  # and the tenant's own key


async def test_timestamp_cursor_between_keys(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 4, step=10.0)
    # tm_create of the keys: START + 0, 10, 20, 30 s. A cursor at +15 s lists the older two.
    result, _ = await _page(client, tenant.auth, page_token="2026-12-01T10:15:45.123456Z")
    assert [item["id"] for item in result][:2] == [ids[1], ids[0]]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "2026-12-01T10:15:30+02:00",
        "2026-12-01T10:15:30.1234567Z",
        "2026-12-01 10:15",
        "2026-13-45T10:15:30.123456Z",
        "2026-12-01 25:15:30.123456",
        base64.urlsafe_b64encode(b"x|y").decode(),
        base64.urlsafe_b64encode(b"2026-12-01T10:15:30.123456Z|not-a-uuid").decode(),
        "%%%",
        "\u00e9t\u00e9",
        "00000000-0000-0000-0000-000000000000",
        "1",
        "null",
    ],
)
async def test_garbage_page_token_is_invalid_page_token(
    client: httpx.AsyncClient, tenant: Tenant, token: str
) -> None:
    response = await client.get(KEYS, params={"page_token": token}, headers=tenant.auth)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_PAGE_TOKEN")
    assert token not in response.json()["error"]["message"] or len(token) < 3


async def test_expired_keys_are_listed_deleted_keys_are_not(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    factory: Factory,
    services: Services,
    tenant: Tenant,
) -> None:
    expired, _ = await factory.accesskey(tenant.customer, expire=86_400)
    deleted, _ = await factory.accesskey(tenant.customer)
    await services.accesskeys.delete(OPERATOR, deleted.id)
    clock.advance(2 * 86_400)
    items, _ = await _walk(client, tenant.auth)
    ids = {item["id"] for item in items}
    assert str(expired.id) in ids
    assert str(deleted.id) not in ids
    assert len(items) == 2


async def test_empty_list_has_empty_string_next_page_token(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    agent = await quick_agent(services, customer)
    auth = bearer(await login(client, agent.username, PASSWORD))
    result, token = await _page(client, auth)
    assert result == []
    assert token == ""


async def test_paging_is_stable_while_keys_are_added(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory, tenant: Tenant
) -> None:
    ids = await _make_keys(factory, clock, tenant.customer, 9, step=0.0)
    first, token = await _page(client, tenant.auth, page_size="4")
    added = await _make_keys(factory, clock, tenant.customer, 3, step=0.0)  # same tm_create
    clock.advance(1)
    added += await _make_keys(factory, clock, tenant.customer, 2, step=0.0)  # newer
    rest, _ = await _walk(client, tenant.auth, page_size="4", page_token=token)
    seen = [item["id"] for item in first + rest]
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    assert not set(added[3:]) & set(seen)


# The audit log and the webhook deliveries are paged by sequence number.
SEQ_PAGED = ("/v1.0/audit", "/v1.0/customer/webhook_deliveries")


@pytest.mark.parametrize("path", SEQ_PAGED)
@pytest.mark.parametrize(
    "token",
    [
        "99999999999999999999",  # was a 500: past the databases' 64-bit integers
        "-99999999999999999999",  # was a 500
        "9223372036854775808",  # one past the largest seq
        "-1",
        "+1",
        " 1",
        "1.5",
        "\u0661",  # a digit int() reads, never in a token
        "x",
    ],
)
async def test_a_sequence_page_token_out_of_range_or_malformed_is_400(
    client: httpx.AsyncClient, tenant: Tenant, path: str, token: str
) -> None:
    response = await client.get(path, params={"page_token": token}, headers=tenant.auth)
    message = assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_PARAMETER")
    assert "page_token" in message


@pytest.mark.parametrize("path", SEQ_PAGED)
async def test_the_largest_sequence_page_token_starts_at_the_newest(
    client: httpx.AsyncClient, tenant: Tenant, path: str
) -> None:
    first = await client.get(path, headers=tenant.auth)
    largest = await client.get(
        path, params={"page_token": "9223372036854775807"}, headers=tenant.auth
    )
    zero = await client.get(path, params={"page_token": "0"}, headers=tenant.auth)
    assert first.status_code == largest.status_code == zero.status_code == 200, largest.text
    assert first.json()["result"], "the tenant's own key made an entry"
    assert largest.json()["result"] == first.json()["result"]
    assert zero.json() == {"result": [], "next_page_token": ""}


@pytest.mark.parametrize(
    "token",
    [
        "0001-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
        base64.urlsafe_b64encode(
            b"9999-12-31T23:59:59.999999Z|ffffffff-ffff-ffff-ffff-ffffffffffff"
        ).decode(),
        base64.urlsafe_b64encode(
            b"0001-01-01T00:00:00.000000Z|00000000-0000-0000-0000-000000000000"
        ).decode(),
    ],
)
async def test_key_page_tokens_at_the_ends_of_time_are_answered(
    client: httpx.AsyncClient, tenant: Tenant, token: str
) -> None:
    """The key list's cursors hold a timestamp and an id: their extremes page, never fail."""
    result, _ = await _page(client, tenant.auth, page_token=token)
    assert len(result) == (1 if token.startswith(("9", "OTk")) else 0)
