"""expiry_notices: which expiring-soon notices were sent (one per key per lead time)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "expiry_notices",
        sa.Column("accesskey_id", sa.Uuid(), nullable=False),
        sa.Column("lead_seconds", sa.Integer(), nullable=False),
        sa.Column("tm_create", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("accesskey_id", "lead_seconds", name="pk_expiry_notices"),
    )


def downgrade() -> None:
    op.drop_table("expiry_notices")
