"""The migrations build exactly the schema the code expects, on both databases."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from keyplane.services.container import Services
from keyplane.store import migrate
from keyplane.store.engine import create_engine
from keyplane.store.tables import metadata
from tests.conftest import DATABASES
from tests.servers import PostgresServer


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrated_schema_matches_the_tables(services: Services) -> None:
    async with services.database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    assert await migrate.current_revision(services.database.engine) == migrate.head_revision()


async def test_migrating_again_changes_nothing(services: Services) -> None:
    await services.migrate()
    await services.migrate()
    assert await migrate.current_revision(services.database.engine) == migrate.head_revision()


# A migration that fails halfway changes nothing --------------------------------

FAILING_MIGRATION = '''
"""fails halfway, for the test"""

import sqlalchemy as sa
from alembic import op

revision = "0999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("accesskeys", sa.Column("half_done", sa.Integer()))
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("this migration fails halfway")


def downgrade():
    pass
'''


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"fresh_{uuid.uuid4().hex}")


@pytest.fixture
def failing_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real migrations plus one on top that fails after changing the schema."""
    head = migrate.head_revision()
    assert head is not None
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0999_fails_halfway.py").write_text(FAILING_MIGRATION.format(head=head))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", scripts)
    return head


def _tables_and_columns(connection: Connection) -> dict[str, set[str]]:
    found = inspect(connection)
    return {
        table: {column["name"] for column in found.get_columns(table)}
        for table in found.get_table_names()
    }


async def _schema(url: str) -> tuple[dict[str, set[str]], str | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(_tables_and_columns)
        return tables, await migrate.current_revision(engine)
    finally:
        await engine.dispose()


async def _upgrade(url: str, revision: str = "head") -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine, revision)
    finally:
        await engine.dispose()


async def test_a_failed_migration_leaves_the_schema_as_it_was(
    empty_database_url: str, failing_head: str
) -> None:
    await _upgrade(empty_database_url, failing_head)
    before = await _schema(empty_database_url)
    assert before[1] == failing_head  # the positive control: the real head is there
    assert "accesskeys" in before[0]

    with pytest.raises(RuntimeError, match="fails halfway"):
        await _upgrade(empty_database_url)

    after = await _schema(empty_database_url)
    assert after == before
    assert "half_done" not in after[0]
    assert "half_done" not in after[0]["accesskeys"]


async def test_a_failed_first_migration_leaves_an_empty_database(
    empty_database_url: str, failing_head: str
) -> None:
    with pytest.raises(RuntimeError, match="fails halfway"):
        await _upgrade(empty_database_url)
    assert await _schema(empty_database_url) == ({}, None)
