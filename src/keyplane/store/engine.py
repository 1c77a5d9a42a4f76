"""Engine creation and the transaction boundary that maps database errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
from sqlalchemy import Connection, Engine, Executable, Result, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from keyplane.errors import AlreadyExists, FailedPrecondition, Unavailable
from keyplane.store.repositories import Repositories
from keyplane.store.sqlite_writer import SqliteWriter


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for other databases or memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_engine(url: str, *, pool_size: int = 10, timeout: float = 5.0) -> AsyncEngine:
    parsed = make_url(url)
    # hide_parameters: a failed statement's message (and so any traceback or
    # log line built from it) never carries its parameters, token hashes included.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            # Only hashes are stored, but nobody else needs to read them.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # No pre-ping: a file cannot drop the connection, and each ping would
        # cost a round trip to aiosqlite's thread on every checkout.
        kwargs["connect_args"] = {"timeout": timeout}
    else:
        kwargs.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=timeout,
            connect_args={"timeout": timeout, "command_timeout": timeout},
        )
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() != "sqlite":
        _ping_idle_connections(engine.sync_engine)
    if parsed.get_backend_name() == "sqlite":
        busy_ms = int(timeout * 1000)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

    return engine


# A pooled connection idle longer than this is pinged before it is used again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has been idle a while.

    A ping on every checkout (``pool_pre_ping``) costs a round trip per
    request, about half of a cache miss's database time. A connection in
    steady use has just proved itself; one that sat idle may have been cut
    (a restart, a proxy's idle timeout) and is pinged, and replaced when the
    ping fails. A connection broken while in use fails its statement (503,
    retried by the client) and SQLAlchemy then discards every connection of
    the pool opened before, so one request per process sees a restart.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise DisconnectionError() from error


def _server_unavailable(error: DBAPIError) -> bool:
    """The server refuses work for now: SQLSTATE class 08 (connection exception)
    or 57 (operator intervention, e.g. "the database system is shutting down")."""
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(code, str) and code[:2] in ("08", "57")


def _is_unique_violation(error: IntegrityError) -> bool:
    text = str(error.orig).lower()
    return "unique" in text or "duplicate" in text


# An inline read waits at most this long for a lock (WAL readers almost never
# wait) before it is handed to aiosqlite's thread, where waiting is harmless.
INLINE_BUSY_SECONDS = 0.0
# The inline reads' connection keeps up to this many KiB of database pages
# (SQLite's default is 2 MiB): the upper levels of the token-hash index and the
# pages of the keys in use, which a large key table spreads over far more than
# 2 MiB, stay in the process instead of being read from the operating system's
# cache, a system call each. In WAL mode SQLite empties it whenever another
# connection has written, and refills it as it reads.
INLINE_CACHE_KIB = 32 * 1024


class _InlineConnection:
    """Runs a reader's statements on the event loop's own thread (SQLite files only).

    A short indexed read on a WAL database takes microseconds; handing it to
    aiosqlite's worker thread and back costs more, and the two threads then
    contend for the GIL. Reads only (``PRAGMA query_only``); a statement that
    finds the database locked is run again on the usual thread-backed engine.
    """

    def __init__(self, connection: Connection, fallback: AsyncEngine) -> None:
        self._connection = connection
        self._fallback = fallback

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        try:
            # The rows are fetched as the caller reads them, which every
            # repository does at once (``.first()``, ``.all()``: 17 us less per
            # read than fetching them here into a frozen copy). Another reader's
            # statements on the shared connection, even its ROLLBACK on return
            # to the pool, leave this cursor readable (Python 3.11's sqlite3).
            return self._connection.execute(statement, parameters)
        except OperationalError:
            self._connection.rollback()
            async with self._fallback.connect() as conn:
                return await conn.execute(statement, parameters)


def _inline_reads_engine(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine on the same SQLite file, for inline reads; None elsewhere."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    inline = create_sync_engine(
        url.set(drivername="sqlite"),
        poolclass=StaticPool,  # one connection, used only by the event loop's thread
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": INLINE_BUSY_SECONDS},
    )

    @event.listens_for(inline, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute(f"PRAGMA cache_size=-{INLINE_CACHE_KIB}")
        cursor.close()

    return inline


def _sqlite_writer(engine: AsyncEngine, timeout: float) -> SqliteWriter | None:
    """The write queue of a SQLite file; None for other databases and memory."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return SqliteWriter(engine, timeout=timeout)


@dataclass
class _Budget:
    """The database time of one request: it starts with the first database use."""

    ends: float | None = None


_request_budget: ContextVar[_Budget | None] = ContextVar("keyplane_database_budget", default=None)


class Database:
    """Owns the engine; hands out repositories bound to one connection."""

    def __init__(self, engine: AsyncEngine, *, timeout: float = 5.0) -> None:
        self.engine = engine
        self.timeout = timeout
        self._inline_for: AsyncEngine = engine
        self._inline = _inline_reads_engine(engine)
        self._writer_for: AsyncEngine = engine
        self._writer = _sqlite_writer(engine, timeout)

    def _inline_reads(self) -> Engine | None:
        """The inline engine of the current ``engine`` (which may have been replaced)."""
        if self._inline_for is not self.engine:
            if self._inline is not None:
                self._inline.dispose()
            self._inline_for, self._inline = self.engine, _inline_reads_engine(self.engine)
        return self._inline

    def _sqlite_writes(self) -> SqliteWriter | None:
        """The writer of the current ``engine`` (which may have been replaced)."""
        if self._writer_for is not self.engine:
            if self._writer is not None:
                self._writer.dispose()
            self._writer_for = self.engine
            self._writer = _sqlite_writer(self.engine, self.timeout)
        return self._writer

    def engines(self) -> list[Engine]:
        """Every engine this database sends statements through, for listeners of its events.

        On a SQLite file that is three: the async engine's, the inline reads'
        and the write queue's.
        """
        found = [self.engine.sync_engine, self._inline_reads(), None]
        writer = self._sqlite_writes()
        if writer is not None:
            found[2] = writer.inline_engine
        return [engine for engine in found if engine is not None]

    @staticmethod
    @contextmanager
    def one_budget() -> Iterator[None]:
        """Every database use inside shares one ``timeout`` (one request's worth).

        Outside, each use has a ``timeout`` of its own (background work).
        """
        token = _request_budget.set(_Budget())
        try:
            yield
        finally:
            _request_budget.reset(token)

    def _remaining(self) -> float:
        budget = _request_budget.get()
        if budget is None:
            return self.timeout
        now = time.monotonic()
        if budget.ends is None:
            budget.ends = now + self.timeout
        return max(0.0, budget.ends - now)

    @asynccontextmanager
    async def _bounded(self, begin: bool) -> AsyncIterator[Repositories]:
        remaining = self._remaining()
        if self.engine.dialect.name == "sqlite":
            # SQLite is not cancelled mid-statement (its worker thread would go
            # on): the lock wait is cut to what is left of the budget instead.
            async with self.engine.connect() as conn:
                if remaining < self.timeout:
                    busy_ms = max(1, int(remaining * 1000))
                    await conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
                    await conn.commit()  # ends the transaction the pragma began
                try:
                    if begin:
                        async with conn.begin():
                            yield Repositories(conn)
                    else:
                        yield Repositories(conn)
                finally:
                    if remaining < self.timeout:
                        busy_ms = int(self.timeout * 1000)
                        await conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
            return
        with anyio.fail_after(remaining):
            async with self.engine.connect() as conn:
                if begin:
                    async with conn.begin():
                        yield Repositories(conn)
                else:
                    # Each read its own transaction, as READ COMMITTED gives every
                    # statement its own snapshot anyway: no BEGIN and ROLLBACK
                    # round trips around a single indexed read.
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield Repositories(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        """One atomic unit of work: all of it is committed, or none of it.

        On a SQLite file, one at a time per process (``SqliteWriter``).
        """
        writer = self._sqlite_writes()
        if writer is not None:
            async with self.mapped_errors(), writer.transaction(self._remaining()) as repos:
                yield repos
            return
        async with self.mapped_errors(), self._bounded(begin=True) as repos:
            yield repos

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Repositories]:
        """Reads only; nothing is committed. On SQLite, run inline (``_InlineConnection``)."""
        inline_reads = self._inline_reads()
        if inline_reads is not None:
            async with self.mapped_errors():
                with inline_reads.connect() as sync:
                    inline = _InlineConnection(sync, self.engine)
                    # Repositories only ever call ``await execute(...)``.
                    yield Repositories(cast(AsyncConnection, inline))
            return
        async with self.mapped_errors(), self._bounded(begin=False) as repos:
            yield repos

    @staticmethod
    @asynccontextmanager
    async def mapped_errors() -> AsyncIterator[None]:
        """Database errors become domain errors (``Unavailable``, ``AlreadyExists``, ...)."""
        try:
            yield
        except IntegrityError as error:
            if _is_unique_violation(error):
                raise AlreadyExists() from None
            raise FailedPrecondition(
                "The request refers to something that does not exist."
            ) from None
        except (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError) as error:
            raise Unavailable(
                "The database is unavailable; retry later.", reason="SERVICE_UNAVAILABLE"
            ) from error
        except DBAPIError as error:
            if error.connection_invalidated or _server_unavailable(error):
                raise Unavailable(
                    "The database is unavailable; retry later.", reason="SERVICE_UNAVAILABLE"
                ) from error
            raise

    async def ping(self) -> None:
        async with self.mapped_errors(), self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self._inline is not None:
            self._inline.dispose()
        if self._writer is not None:
            self._writer.dispose()
        await self.engine.dispose()
