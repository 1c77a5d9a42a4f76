"""Write transactions on a SQLite file: one at a time per process, queued in asyncio.

SQLite has one write lock per database. Left to itself, every writer would
take a pooled connection, open a deferred transaction, and busy-wait for the
lock in aiosqlite's thread, polling at up to 100 ms intervals: no queue, no
fairness, and the holder kept the lock across every statement's round trip
through the event loop. On a saturated loop each round trip waits behind
every other ready task, so a transaction of five statements held the lock for
as many loop turns, and a writer could poll past its whole busy timeout
(5 s) while others took the lock in turn: 503s under load.

Here, instead:

- writers of this process queue on an ``asyncio.Lock`` (first come, first
  served), bounded by the request's database budget, so they wait in asyncio
  and never in SQLite's busy loop;
- the holder runs its statements on the event loop's own thread, on one
  connection kept for writing, so the lock is held for the statements' own
  microseconds and not across loop turns (it does not await anything that
  yields while it holds it);
- the transaction starts with ``BEGIN IMMEDIATE``: the write lock is taken
  before the first read, so the transaction reads what it then writes over,
  and never has to upgrade a read lock to a write lock.

When another process holds the lock (the command line, a second server
worker), ``BEGIN IMMEDIATE`` fails at once on the inline connection (its busy
timeout is 0, so the loop never waits in SQLite); the transaction then runs on
the thread-backed engine, which waits for the lock in its thread for what is
left of the budget, as before.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
from sqlalchemy import Connection, Engine, Executable, Result, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import SingletonThreadPool

from keyplane.store.repositories import Repositories


class _InlineWriteConnection:
    """Runs a writer's statements on the event loop's thread, on the write connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        result = self._connection.execute(statement, parameters)
        if result.returns_rows:
            return result.freeze()()  # rows fetched at once, as the async engine does
        return result


def _inline_write_engine(engine: AsyncEngine) -> Engine:
    inline = create_sync_engine(
        engine.url.set(drivername="sqlite"),
        # One connection per thread: the event loop's thread is the only user,
        # and the lock below lets one transaction at a time use it.
        poolclass=SingletonThreadPool,
        hide_parameters=True,
        # Busy timeout 0: a lock held by another process is never waited for
        # here, on the loop's thread (the thread-backed engine waits instead).
        connect_args={"check_same_thread": False, "timeout": 0.0},
    )

    @event.listens_for(inline, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return inline


def _is_locked(error: OperationalError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text


class SqliteWriter:
    """The write transactions of one SQLite database, for every event loop of the process."""

    def __init__(self, engine: AsyncEngine, *, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._inline = _inline_write_engine(engine)
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def transaction(self, remaining: float) -> AsyncIterator[Repositories]:
        """One write transaction; ``TimeoutError`` when the budget runs out in the queue."""
        lock = self._lock()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with anyio.fail_after(remaining):
            await lock.acquire()
        try:
            with self._inline.connect() as sync:
                try:
                    sync.exec_driver_sql("BEGIN IMMEDIATE")
                except OperationalError as error:
                    sync.rollback()
                    if not _is_locked(error):
                        raise
                    inline = False
                else:
                    inline = True
                if inline:
                    try:
                        yield Repositories(cast(AsyncConnection, _InlineWriteConnection(sync)))
                    except BaseException:
                        sync.rollback()
                        raise
                    sync.commit()
                    return
            left = remaining - (loop.time() - started)
            async with self._threaded(left) as repos:
                yield repos
        finally:
            lock.release()

    @asynccontextmanager
    async def _threaded(self, remaining: float) -> AsyncIterator[Repositories]:
        """Another process holds the lock: wait for it in aiosqlite's thread, within budget."""
        busy_ms = max(1, int(remaining * 1000))
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            await conn.commit()  # ends the (empty) transaction the pragma began
            try:
                async with conn.begin():
                    # The driver opens no transaction of its own before this.
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                    yield Repositories(conn)
            finally:
                await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")

    @property
    def inline_engine(self) -> Engine:
        """The engine the write transactions run on, on the event loop's thread."""
        return self._inline

    def dispose(self) -> None:
        self._inline.dispose()
