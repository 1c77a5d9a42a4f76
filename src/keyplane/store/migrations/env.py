"""Alembic environment: run by ``keyplane.store.migrate`` on a connection it passes in."""

from __future__ import annotations

from alembic import context

from keyplane.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'keyplane migrate', which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
