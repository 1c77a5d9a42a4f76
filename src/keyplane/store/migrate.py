"""Schema migrations (Alembic), for SQLite and PostgreSQL alike."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# Any constant: replicas starting together migrate one after the other.
_MIGRATION_LOCK = 0x6B6579706C616E65  # "keyplane"


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    command.upgrade(alembic_config(connection), revision)


def _upgrade_sqlite(connection: Connection, revision: str) -> None:
    """All migrations in one transaction, as on PostgreSQL.

    Python's sqlite3 driver opens a transaction only before INSERT, UPDATE and
    DELETE, so DDL ran outside any, and a migration that failed halfway left
    half a schema. With the driver's own handling off, keyplane opens the
    transaction itself (``IMMEDIATE``: two
    processes starting together migrate one after the other).
    """
    driver = connection.connection.dbapi_connection
    assert driver is not None
    saved = driver.isolation_level
    driver.isolation_level = None  # keyplane begins and commits
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            command.upgrade(alembic_config(connection), revision)
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    finally:
        driver.isolation_level = saved


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction; safe to run on every start."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade_sqlite, revision)
        return
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


def _no_dialect_notes(record: logging.LogRecord) -> bool:
    """Drop alembic's "Context impl …" and "Will assume … DDL" lines.

    They tell an operator nothing, appear on every connection alembic
    configures (every command reads the revision), and "non-transactional
    DDL" is wrong on SQLite, where keyplane runs the migrations in one
    transaction. "Running upgrade …" lines are kept.
    """
    return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_no_dialect_notes)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
