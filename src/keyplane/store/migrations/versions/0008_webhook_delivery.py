"""webhook delivery: the outbox's delivery state, and VoIPBIN's customer fields

``events`` gains its delivery state (status, attempts, next attempt, lease,
last error); ``customers`` gains ``phone_number`` and ``address`` (VoIPBIN's
PUT /v1.0/customer) and ``webhook_secret_generation`` (the signing secret is
derived from it, never stored). Events already in the outbox become pending:
those of customers without a webhook are marked skipped at the first round.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone_number", sa.String(64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("webhook_secret_generation", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivery_status", sa.String(16), nullable=False, server_default="pending")
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("tm_next_attempt", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("tm_lease", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=False, server_default=""))
        batch_op.create_index(
            "ix_events_delivery", ["delivery_status", "tm_next_attempt"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_delivery")
        for column in ("last_error", "tm_lease", "tm_next_attempt", "attempts", "delivery_status"):
            batch_op.drop_column(column)
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for column in ("webhook_secret_generation", "address", "phone_number"):
            batch_op.drop_column(column)
