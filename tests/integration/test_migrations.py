"""The migrations build exactly the schema the code expects, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from keyplane.services.container import Services
from keyplane.store import migrate
from keyplane.store.tables import metadata


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
