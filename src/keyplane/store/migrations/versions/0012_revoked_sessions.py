"""revoked_sessions: sessions ended by a logout, until their token expires

A session token's ``jti`` is recorded here by a logout, in the same
transaction as its entry in the revocation log; every replica refuses the
token from then on (a primary key seek, or its cache). Rows are forgotten once
``tm_expire`` has passed, by a range of its index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("tm_expire", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tm_create", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revoked_sessions")),
    )
    op.create_index(op.f("ix_revoked_sessions_tm_expire"), "revoked_sessions", ["tm_expire"])


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_sessions_tm_expire"), table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
