"""Expiring-soon notices: ``accesskey_expiring`` at each lead time, once per key per lead
time however many replicas scan, and delivered like every other event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from keyplane.domain.clock import FrozenClock
from tests.conftest import Replica, replica
from tests.factories import ONE_DAY, Factory, bearer
from tests.integration.conftest import KEYS, key_url
from tests.integration.test_voipbin_compat import assert_voipbin
from tests.webhook_receiver import running_receiver


@pytest.fixture
async def pair(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[Replica, Replica]]:
    async with (
        replica(tmp_path, database_url, clock) as a,
        replica(tmp_path, database_url, clock, fresh=False) as b,
    ):
        yield a, b


async def scan(*replicas: Replica) -> int:
    sent = await asyncio.gather(*(r.services.notices.scan_once() for r in replicas))
    return sum(sent)


async def expiring(one: Replica, customer_id: Any) -> list[dict[str, Any]]:
    async with one.services.database.reader() as repos:
        events = await repos.events.list_for_customer(customer_id)
    return [event for event in events if event["type"] == "accesskey_expiring"]


async def test_one_notice_per_key_per_lead_time_between_replicas(
    pair: tuple[Replica, Replica], clock: FrozenClock
) -> None:
    a, b = pair
    factory = Factory(a.services)
    customer = await factory.customer()
    auth = bearer(await factory.identity_token(customer))  # far from expiring
    async with a.client() as http:
        month = (
            await http.post(KEYS, json={"name": "m", "expire": 30 * ONE_DAY}, headers=auth)
        ).json()
        short = (
            await http.post(KEYS, json={"name": "s", "expire": 2 * ONE_DAY}, headers=auth)
        ).json()
    assert await scan(a, b) == 0  # nothing is due

    clock.advance(16 * ONE_DAY + 1)  # 14 days before the month key expires
    assert await scan(a, b) == 1
    assert await scan(a, b) == 0  # once
    clock.advance(3600)
    assert await scan(a, b) == 0
    notices = await expiring(a, customer.id)
    assert [event["payload"]["id"] for event in notices] == [month["id"]]
    assert_voipbin(notices[0]["payload"], "CustomerManagerAccesskey")

    clock.advance(11 * ONE_DAY)  # 3 days before
    assert await scan(a, b) == 1
    assert await scan(a, b) == 0
    notices = await expiring(a, customer.id)
    assert [event["payload"]["id"] for event in notices] == [month["id"], month["id"]]
    # The two-day key never had a notice: both lead moments came before it existed.
    assert short["id"] not in {event["payload"]["id"] for event in notices}


async def test_a_late_scan_sends_only_the_shortest_due_notice(
    pair: tuple[Replica, Replica], clock: FrozenClock
) -> None:
    a, _ = pair
    factory = Factory(a.services)
    customer = await factory.customer()
    await factory.accesskey(customer, expire=30 * ONE_DAY)
    clock.advance(28 * ONE_DAY)  # both lead times passed while nothing scanned
    assert await scan(a) == 1
    clock.advance(ONE_DAY)
    assert await scan(a) == 0
    assert len(await expiring(a, customer.id)) == 1


async def test_deleted_disabled_and_rotated_keys_get_no_notice(
    pair: tuple[Replica, Replica], clock: FrozenClock
) -> None:
    a, _ = pair
    factory = Factory(a.services)
    customer = await factory.customer()
    auth = bearer(await factory.identity_token(customer))
    async with a.client() as http:
        ids = []
        for _ in range(3):
            body = {"expire": 20 * ONE_DAY}
            ids.append((await http.post(KEYS, json=body, headers=auth)).json()["id"])
        await http.delete(key_url(ids[0]), headers=auth)
        await http.post(f"{key_url(ids[1])}/disable", headers=auth)
        rotated = (
            await http.post(f"{key_url(ids[2])}/rotate", json={"grace": 600}, headers=auth)
        ).json()
    clock.advance(7 * ONE_DAY)
    await scan(a)
    noticed = {event["payload"]["id"] for event in await expiring(a, customer.id)}
    assert noticed == {rotated["id"]}  # the replacement, made with the same lifetime


async def test_lead_times_are_configurable_and_notices_reach_the_webhook(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with running_receiver() as receiver:
        async with replica(
            tmp_path,
            database_url,
            clock,
            accesskey_expiring_notice_days="1",
            webhook_allowed_networks="127.0.0.0/8",
        ) as one:
            factory = Factory(one.services)
            customer = await factory.customer()
            auth = bearer(await factory.identity_token(customer))
            async with one.client() as http:
                await one.services.dispatcher.dispatch_once()  # the tenant key's event
                await http.put(
                    "/v1.0/customer", json={"name": "c", "webhook_uri": receiver.url}, headers=auth
                )
                await http.post(KEYS, json={"expire": 3 * ONE_DAY}, headers=auth)
                clock.advance(ONE_DAY)
                assert await scan(one) == 0  # 14 and 3 days are not configured here
                clock.advance(ONE_DAY)
                assert await scan(one) == 1
                await one.services.dispatcher.dispatch_once()
    types = [json.loads(item.body)["type"] for item in receiver.received]
    assert types == ["accesskey_created", "accesskey_expiring"]
