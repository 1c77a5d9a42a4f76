"""On PostgreSQL a read is one round trip: no BEGIN and ROLLBACK around it.

A read runs in autocommit (each statement its own transaction, which READ
COMMITTED gives every statement anyway). A unit of work still runs in one
transaction, on the same pooled connection after a read too.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from keyplane.store.engine import Database


@pytest.fixture
def database(one_connection_database: Database) -> Database:
    return one_connection_database


async def logged_queries(database: Database) -> list[str]:
    """The first word of each simple-protocol query the (only) pooled connection sends."""
    queries: list[str] = []
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(  # type: ignore[union-attr]
            lambda record: queries.append(record.query.split()[0].strip(";").upper())
        )
    queries.clear()
    return queries


async def test_a_read_sends_no_begin_or_rollback(database: Database) -> None:
    queries = await logged_queries(database)
    async with database.transaction() as repos:  # the control: the logger sees these
        await repos.connection.execute(text("SELECT 1"))
    assert queries == ["BEGIN", "COMMIT"]

    queries.clear()
    for _ in range(3):
        async with database.reader() as repos:
            assert (await repos.connection.execute(text("SELECT 41 + 1"))).scalar_one() == 42
    assert queries == []


async def test_a_unit_of_work_after_a_read_is_still_one_transaction(database: Database) -> None:
    # A temporary table lives on the pool's one connection and goes with it:
    # the shared database keeps the schema that other tests compare.
    async with database.transaction() as repos:
        await repos.connection.execute(text("CREATE TEMPORARY TABLE notes (body TEXT NOT NULL)"))
    async with database.reader() as repos:
        await repos.connection.execute(text("SELECT count(*) FROM notes"))
    queries = await logged_queries(database)

    async def stopped_half_way() -> None:
        async with database.transaction() as repos:
            await repos.connection.execute(text("INSERT INTO notes VALUES ('first')"))
            raise RuntimeError("stopped half way")

    with pytest.raises(RuntimeError, match="half"):
        await stopped_half_way()
    assert queries == ["BEGIN", "ROLLBACK"]
    async with database.reader() as repos:
        count = (await repos.connection.execute(text("SELECT count(*) FROM notes"))).scalar_one()
    assert count == 0
