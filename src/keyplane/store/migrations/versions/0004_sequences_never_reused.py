"""sequences never reused: AUTOINCREMENT for the revocation log and the outbox on SQLite

Without AUTOINCREMENT, SQLite hands out max(seq) + 1, so once a prune has
emptied the revocation log the next revocation gets a number that every
running follower has already passed, and is skipped. PostgreSQL's sequences
never go back, so only SQLite changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("revocations", "events")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        # The copy keeps every row and its number; SQLite then starts above them.
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
