"""indexes that seek: live-key listing and expiry, events by status and by customer

The access key listing reads ``(customer_id, tm_create, id)`` over live keys
(``tm_delete IS NULL``), so soft-deleted keys cost a page nothing; the
expiring-soon scan reads live keys by ``tm_expire``; the webhook dispatcher
takes the oldest pending events by ``(delivery_status, seq)``, the outbox
retention the oldest finished ones by ``(delivery_status, tm_create)``; the
deliveries listing reads ``(customer_id, seq)``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("tm_delete IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_accesskeys_live_listing",
        "accesskeys",
        ["customer_id", "tm_create", "id"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.drop_index("ix_accesskeys_customer_listing", table_name="accesskeys")
    op.create_index(
        "ix_accesskeys_live_expiry",
        "accesskeys",
        ["tm_expire"],
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_index("ix_events_status_seq", "events", ["delivery_status", "seq"])
    op.create_index("ix_events_status_created", "events", ["delivery_status", "tm_create"])
    op.drop_index("ix_events_delivery", table_name="events")
    op.create_index("ix_events_customer_seq", "events", ["customer_id", "seq"])
    op.drop_index("ix_events_customer_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_customer_id", "events", ["customer_id"])
    op.drop_index("ix_events_customer_seq", table_name="events")
    op.create_index("ix_events_delivery", "events", ["delivery_status", "tm_next_attempt"])
    op.drop_index("ix_events_status_created", table_name="events")
    op.drop_index("ix_events_status_seq", table_name="events")
    op.drop_index("ix_accesskeys_live_expiry", table_name="accesskeys")
    op.create_index(
        "ix_accesskeys_customer_listing", "accesskeys", ["customer_id", "tm_create", "id"]
    )
    op.drop_index("ix_accesskeys_live_listing", table_name="accesskeys")
