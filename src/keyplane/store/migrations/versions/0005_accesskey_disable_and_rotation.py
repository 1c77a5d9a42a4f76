"""accesskeys.tm_disable and accesskeys.rotated_to

``tm_disable`` is set while a key is disabled (reversibly refused);
``rotated_to`` names the key that replaced it by a rotation.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accesskeys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tm_disable", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rotated_to", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accesskeys", schema=None) as batch_op:
        batch_op.drop_column("rotated_to")
        batch_op.drop_column("tm_disable")
