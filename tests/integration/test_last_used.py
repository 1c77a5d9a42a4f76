"""tm_last_used: noted on verification, written in batches, shown only with ?expand=."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event

from keyplane.domain.clock import FrozenClock
from keyplane.errors import Unavailable
from keyplane.services.container import Services
from keyplane.services.usage import LastUsedRecorder
from keyplane.store.accesskeys import AccesskeyRepository
from tests.conftest import START, started_replica
from tests.factories import ACCESSKEY_FIELDS, ONE_DAY, Factory, bearer


async def last_used(services: Services, key_id: uuid.UUID) -> datetime | None:
    async with services.database.reader() as repos:
        return await repos.accesskeys.last_used(key_id)


async def use(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/v1.0/customer", headers=bearer(token))
    assert response.status_code == 200, response.text


def spy_on_writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[uuid.UUID, datetime]]:
    writes: list[dict[uuid.UUID, datetime]] = []
    original = AccesskeyRepository.touch_last_used

    async def spying(self: AccesskeyRepository, moments: dict[uuid.UUID, datetime]) -> None:
        writes.append(dict(moments))
        await original(self, moments)

    monkeypatch.setattr(AccesskeyRepository, "touch_last_used", spying)
    return writes


async def test_using_a_key_marks_it_and_a_flush_writes_it(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    key, token = await factory.accesskey(customer)
    unused, _ = await factory.accesskey(customer)
    assert await last_used(services, key.id) is None

    await use(client, token)
    assert await last_used(services, key.id) is None  # not on the request path

    assert await services.usage.flush() == 1
    assert await last_used(services, key.id) == START
    assert await last_used(services, unused.id) is None
    assert await services.usage.flush() == 0  # nothing new to write


async def test_many_uses_make_one_write_per_key_per_flush(
    client: httpx.AsyncClient,
    services: Services,
    factory: Factory,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = await factory.customer()
    first, first_token = await factory.accesskey(customer)
    second, second_token = await factory.accesskey(customer)
    writes = spy_on_writes(monkeypatch)

    for _ in range(5):
        clock.advance(1)
        await use(client, first_token)
    for _ in range(3):
        clock.advance(1)
        await use(client, second_token)
    first_moment = START + timedelta(seconds=5)  # each key's latest use
    second_moment = START + timedelta(seconds=8)

    assert await services.usage.flush() == 2
    assert len(writes) == 1
    assert writes[0] == {first.id: first_moment, second.id: second_moment}
    assert await last_used(services, first.id) == first_moment
    assert await last_used(services, second.id) == second_moment

    assert await services.usage.flush() == 0
    assert len(writes) == 1


async def test_tm_last_used_never_goes_backwards(
    client: httpx.AsyncClient, services: Services, factory: Factory, clock: FrozenClock
) -> None:
    key, token = await factory.accesskey(await factory.customer())
    clock.advance(3600)
    later = clock.now()
    await use(client, token)
    await services.usage.flush()
    assert await last_used(services, key.id) == later

    clock.set(START)  # an earlier note, e.g. from a replica whose flush comes late
    await use(client, token)
    assert await services.usage.flush() == 1
    assert await last_used(services, key.id) == later

    clock.set(later)  # the same moment again: still no change
    await use(client, token)
    await services.usage.flush()
    assert await last_used(services, key.id) == later


async def test_notes_survive_a_failed_write(
    client: httpx.AsyncClient,
    services: Services,
    factory: Factory,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, token = await factory.accesskey(await factory.customer())
    await use(client, token)
    original = AccesskeyRepository.touch_last_used

    async def failing(self: AccesskeyRepository, moments: dict[uuid.UUID, datetime]) -> None:
        raise Unavailable("The database is unavailable; retry later.")

    monkeypatch.setattr(AccesskeyRepository, "touch_last_used", failing)
    with pytest.raises(Unavailable):
        await services.usage.flush()
    monkeypatch.setattr(AccesskeyRepository, "touch_last_used", original)

    clock.advance(5)
    newer = clock.now()
    await use(client, token)
    assert await services.usage.flush() == 1
    assert await last_used(services, key.id) == newer  # the newer note wins


async def test_api_responses_show_exactly_the_contract_fields(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    token = await factory.identity_token(customer)
    await use(client, token)
    created = await client.post(
        "/v1.0/accesskeys", headers=bearer(token), json={"name": "n", "expire": ONE_DAY}
    )
    assert created.status_code == 200, created.text
    assert set(created.json()) == ACCESSKEY_FIELDS | {"token"}
    key_id = created.json()["id"]
    await use(client, created.json()["token"])
    assert await services.usage.flush() == 2
    assert await last_used(services, uuid.UUID(key_id)) is not None

    got = await client.get(f"/v1.0/accesskeys/{key_id}", headers=bearer(token))
    assert got.status_code == 200
    assert set(got.json()) == ACCESSKEY_FIELDS
    listed = await client.get("/v1.0/accesskeys", headers=bearer(token))
    assert listed.status_code == 200
    assert [set(item) for item in listed.json()["result"]] == [ACCESSKEY_FIELDS, ACCESSKEY_FIELDS]
    updated = await client.put(
        f"/v1.0/accesskeys/{key_id}", headers=bearer(token), json={"name": "m", "detail": "d"}
    )
    assert updated.status_code == 200
    assert set(updated.json()) == ACCESSKEY_FIELDS
    deleted = await client.delete(f"/v1.0/accesskeys/{key_id}", headers=bearer(token))
    assert deleted.status_code == 200
    assert set(deleted.json()) == ACCESSKEY_FIELDS
    for response in (created, got, listed, updated, deleted):
        assert "last_used" not in response.text


# The background writer -------------------------------------------------------


async def test_the_background_writer_flushes_on_its_own(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with started_replica(
        tmp_path, database_url, clock, fresh=True, last_used_flush_interval=0.1
    ) as (
        services,
        http,
    ):
        key, token = await Factory(services).accesskey(await Factory(services).customer())
        await use(http, token)
        for _ in range(20):  # at most a second
            if await last_used(services, key.id) is not None:
                break
            await asyncio.sleep(0.05)
        assert await last_used(services, key.id) == START


async def test_closing_writes_what_is_pending(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    async with started_replica(tmp_path, database_url, clock, fresh=True) as (services, http):
        key, token = await Factory(services).accesskey(await Factory(services).customer())
        await use(http, token)
        assert await last_used(services, key.id) is None  # the interval is a minute
    async with started_replica(tmp_path, database_url, clock, fresh=False) as (services, _):
        assert await last_used(services, key.id) == START


async def test_a_flush_writes_in_bounded_chunks_each_its_own_transaction(
    services: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = spy_on_writes(monkeypatch)
    commits: list[int] = []
    for engine in services.database.engines():
        event.listen(engine, "commit", lambda _conn: commits.append(len(writes)))
    recorder = LastUsedRecorder(services.database, clock, interval=60.0, chunk=7)
    keys = [uuid.uuid4() for _ in range(30)]
    for key_id in keys:
        recorder.mark(key_id)
    assert await recorder.flush() == 30
    assert [len(chunk) for chunk in writes] == [7, 7, 7, 7, 2]
    assert commits == [1, 2, 3, 4, 5]  # one commit after each chunk, none holding two
    assert [key for chunk in writes for key in chunk] == keys
    assert await recorder.flush() == 0


async def test_a_failed_chunk_keeps_its_notes_and_the_rest_for_the_next_round(
    services: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[dict[uuid.UUID, datetime]] = []
    original = AccesskeyRepository.touch_last_used

    async def third_fails(self: AccesskeyRepository, moments: dict[uuid.UUID, datetime]) -> None:
        if len(written) == 2:
            written.append({})  # only once
            raise Unavailable("The database is unavailable; retry later.")
        written.append(dict(moments))
        await original(self, moments)

    monkeypatch.setattr(AccesskeyRepository, "touch_last_used", third_fails)
    recorder = LastUsedRecorder(services.database, clock, interval=60.0, chunk=4)
    keys = [uuid.uuid4() for _ in range(14)]
    for key_id in keys:
        recorder.mark(key_id)
    with pytest.raises(Unavailable):
        await recorder.flush()
    assert await recorder.flush() == 6  # the failed chunk and the one never tried
    assert sorted(key for chunk in written for key in chunk) == sorted(keys)
