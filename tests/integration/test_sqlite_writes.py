"""Write transactions on a SQLite file queue in asyncio, one at a time, from ``BEGIN IMMEDIATE``.

Under load, writers used to busy-wait for SQLite's lock in aiosqlite's
threads while the holder kept it across a loop turn per statement: on a
saturated event loop, writes answered 503 once the busy timeout ran out.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services, build_services
from keyplane.store.sqlite_writer import SqliteWriter
from keyplane.web.app import create_app
from tests.conftest import make_settings
from tests.factories import Factory, bearer

TIMEOUT = 1.0
# Under one budget; a second one spent would take a request past 2 x TIMEOUT.
# The rest is slack for a test process that shares two cores with the suite.
MARGIN = 0.9
KEYS = "/v1.0/accesskeys"
NEW_KEY = {"name": "n", "detail": "", "expire": 86400}


@asynccontextmanager
async def sqlite_app(
    tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, Factory]]:
    settings = make_settings(tmp_path, database_timeout=TIMEOUT)
    services = build_services(settings, clock=clock)
    try:
        await services.migrate()
        transport = httpx.ASGITransport(app=create_app(settings, services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, services, Factory(services)
    finally:
        await services.close()


async def _saturate_loop(stop: asyncio.Event, slice_seconds: float) -> None:
    """Keep the event loop busy, as a server at full load does: CPU work between awaits."""
    while not stop.is_set():
        until = time.perf_counter() + slice_seconds
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def test_concurrent_writes_on_a_saturated_loop_never_run_out_of_time(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """80 creations from 40 clients, a background writer, a busy loop: 0 x 503."""
    async with sqlite_app(tmp_path, clock) as (http, services, factory):
        customer = await factory.customer()
        token = await factory.identity_token(customer)
        keys = [(await factory.accesskey(customer))[0] for _ in range(20)]
        stop = asyncio.Event()
        flushes = 0

        async def background_writer() -> None:
            nonlocal flushes
            while not stop.is_set():
                for key in keys:
                    services.usage.mark(key.id)
                await services.usage.flush()
                flushes += 1
                await asyncio.sleep(0)

        async def client() -> None:
            for _ in range(2):
                response = await http.post(KEYS, headers=bearer(token), json=NEW_KEY)
                answers[response.status_code] += 1

        answers: Counter[int] = Counter()
        load = [asyncio.create_task(_saturate_loop(stop, 0.002)) for _ in range(8)]
        writer = asyncio.create_task(background_writer())
        try:
            await asyncio.gather(*(client() for _ in range(40)))
        finally:
            stop.set()
            await asyncio.gather(*load, writer)
    assert answers == Counter({200: 80}), answers
    assert flushes > 0
    with sqlite3.connect(tmp_path / "keyplane.db") as db:
        (created,) = db.execute("SELECT count(*) FROM accesskeys WHERE name = 'n'").fetchone()
    assert created == 80


async def test_a_write_transaction_holds_the_lock_from_its_start(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """``BEGIN IMMEDIATE``: the lock is taken before the first read, not at the first write."""
    async with sqlite_app(tmp_path, clock) as (_http, services, _factory):
        other = sqlite3.connect(tmp_path / "keyplane.db", timeout=0, isolation_level=None)
        try:
            async with services.database.transaction():
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN IMMEDIATE")  # and it is released at the end
            other.execute("ROLLBACK")
        finally:
            other.close()


async def test_a_queued_writer_waits_no_longer_than_the_request_budget(
    tmp_path: Path, clock: FrozenClock
) -> None:
    async with sqlite_app(tmp_path, clock) as (http, services, factory):
        customer = await factory.customer()
        token = await factory.identity_token(customer)
        release = asyncio.Event()
        holding = asyncio.Event()

        async def hold_the_lock() -> None:
            async with services.database.transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_the_lock())
        await holding.wait()
        started = time.monotonic()
        response = await http.post(KEYS, headers=bearer(token), json=NEW_KEY)
        elapsed = time.monotonic() - started
        release.set()
        await holder
        after = await http.post(KEYS, headers=bearer(token), json=NEW_KEY)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["reason"] == "SERVICE_UNAVAILABLE"
    assert elapsed < TIMEOUT + MARGIN, elapsed
    assert after.status_code == 200, after.text  # the queue moves on


async def test_a_lock_held_by_another_process_is_waited_for_off_the_loop(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inline connection never waits; the thread-backed engine waits, then commits."""
    async with sqlite_app(tmp_path, clock) as (http, _services, factory):
        customer = await factory.customer()
        token = await factory.identity_token(customer)
        waiting = asyncio.Event()
        threaded = SqliteWriter._threaded

        def spy(self: SqliteWriter, remaining: float) -> Any:
            waiting.set()
            return threaded(self, remaining)

        monkeypatch.setattr(SqliteWriter, "_threaded", spy)
        other = sqlite3.connect(tmp_path / "keyplane.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            request = asyncio.create_task(http.post(KEYS, headers=bearer(token), json=NEW_KEY))
            await asyncio.wait_for(waiting.wait(), 10)  # a guard: it is at once
            other.execute("ROLLBACK")
            response = await request
        finally:
            other.close()
    assert response.status_code == 200, response.text
