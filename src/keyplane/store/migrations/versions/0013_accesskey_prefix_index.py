"""an index for finding a live key by its display prefix

A leaked token is matched to its key by its display prefix (``vb_`` and 8
characters, ``token_prefix``): the search reads
``(customer_id, token_prefix, tm_create, id)`` over live keys, one seek and
its matches, newest first without a sort.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("tm_delete IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_accesskeys_live_prefix",
        "accesskeys",
        ["customer_id", "token_prefix", "tm_create", "id"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_accesskeys_live_prefix", table_name="accesskeys")
