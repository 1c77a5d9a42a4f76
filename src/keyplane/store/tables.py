"""Table definitions (SQLAlchemy Core), portable across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, whatever the database keeps.

    SQLite has no time zone type: values are stored as naive UTC with six
    fractional digits, so text order equals time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite's rowid alias must be INTEGER to autoincrement.
SEQUENCE = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("email", String(320), nullable=False, default=""),
    Column("webhook_method", String(16), nullable=False, default=""),
    Column("webhook_uri", Text, nullable=False, default=""),
    Column("phone_number", String(64), nullable=False, default="", server_default=""),
    Column("address", Text, nullable=False, default="", server_default=""),
    # The signing secret is derived, never stored: this counts its rotations.
    Column("webhook_secret_generation", Integer, nullable=False, default=0, server_default="0"),
    Column("tm_create", UTCDateTime, nullable=False),
    Column("tm_update", UTCDateTime),
    Column("tm_delete", UTCDateTime),
)

agents = Table(
    "agents",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, ForeignKey("customers.id"), nullable=False, index=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("permission", Integer, nullable=False),
    Column("tm_create", UTCDateTime, nullable=False),
    Column("tm_update", UTCDateTime),
    Column("tm_delete", UTCDateTime),
)

accesskeys = Table(
    "accesskeys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, ForeignKey("customers.id"), nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_prefix", String(11), nullable=False),
    Column("tm_expire", UTCDateTime, nullable=False),
    Column("tm_create", UTCDateTime, nullable=False),
    Column("tm_update", UTCDateTime),
    Column("tm_delete", UTCDateTime),
    Column("tm_last_used", UTCDateTime),
    Column("tm_disable", UTCDateTime),  # set while the key is disabled
    Column("rotated_to", Uuid),  # the key that replaced this one by a rotation
    Column("scopes", JSON(none_as_null=True)),  # a restricted key's rules; null: unrestricted
    Column("allowed_networks", JSON(none_as_null=True)),  # CIDRs; null: anywhere
    # Listing a customer's live keys: deleted keys are not in it, and the page
    # cursor (tm_create, id) is a range of it (migration 0011).
    Index(
        "ix_accesskeys_live_listing",
        "customer_id",
        "tm_create",
        "id",
        sqlite_where=text("tm_delete IS NULL"),
        postgresql_where=text("tm_delete IS NULL"),
    ),
    # Finding a live key by its display prefix (a leaked token), newest first (0013).
    Index(
        "ix_accesskeys_live_prefix",
        "customer_id",
        "token_prefix",
        "tm_create",
        "id",
        sqlite_where=text("tm_delete IS NULL"),
        postgresql_where=text("tm_delete IS NULL"),
    ),
    # The expiring-soon scan: live keys by expiry, a range instead of the table.
    Index(
        "ix_accesskeys_live_expiry",
        "tm_expire",
        sqlite_where=text("tm_delete IS NULL"),
        postgresql_where=text("tm_delete IS NULL"),
    ),
)

# Expiring-soon notices sent: one row per key and lead time, never two.
expiry_notices = Table(
    "expiry_notices",
    metadata,
    Column("accesskey_id", Uuid, primary_key=True),
    Column("lead_seconds", Integer, primary_key=True),
    Column("tm_create", UTCDateTime, nullable=False),
)

# The outbox: written in the same transaction as the change it describes.
events = Table(
    "events",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("id", Uuid, nullable=False, unique=True),
    Column("customer_id", Uuid, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("tm_create", UTCDateTime, nullable=False),
    Column("tm_delivered", UTCDateTime),
    # Webhook delivery: pending (due at tm_next_attempt), delivered, failed or skipped.
    Column(
        "delivery_status", String(16), nullable=False, default="pending", server_default="pending"
    ),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("tm_next_attempt", UTCDateTime),
    Column("tm_lease", UTCDateTime),  # a replica is delivering it until then
    Column("last_error", Text, nullable=False, default="", server_default=""),
    # Seeks, not scans (migration 0011): the oldest pending events for the
    # dispatcher; the oldest finished ones for the retention; a customer's
    # deliveries, newest first, paged by seq.
    Index("ix_events_status_seq", "delivery_status", "seq"),
    Index("ix_events_status_created", "delivery_status", "tm_create"),
    Index("ix_events_customer_seq", "customer_id", "seq"),
    sqlite_autoincrement=True,  # numbers are never reused, also after a prune
)

# Every revocation, written in the same transaction as the change: the durable
# path by which each replica learns of it, even when Redis did not deliver.
revocations = Table(
    "revocations",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("subject_id", Uuid, nullable=False),
    Column("token_hash", String(64)),
    Column("tm_create", UTCDateTime, nullable=False, index=True),
    sqlite_autoincrement=True,  # numbers are never reused, also after a prune
)

# Sessions ended by a logout, by their token's ``jti``: refused until the token's
# own expiry, then forgotten (the token is refused by its ``exp`` from then on).
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("id", Uuid, primary_key=True),  # the token's jti
    Column("agent_id", Uuid, nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("tm_expire", UTCDateTime, nullable=False, index=True),
    Column("tm_create", UTCDateTime, nullable=False),
)

# Who changed what, when, from where: kept for KEYPLANE_AUDIT_RETENTION_DAYS.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("id", Uuid, nullable=False, unique=True),
    Column("customer_id", Uuid, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", Uuid, nullable=False),
    Column("subject_id", Uuid, nullable=False),
    Column("address", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("tm_create", UTCDateTime, nullable=False, index=True),
    Index("ix_audit_log_customer_seq", "customer_id", "seq"),
    sqlite_autoincrement=True,
)

# One-row facts about the installation, e.g. that the first start has run.
installation = Table(
    "installation",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("tm_create", UTCDateTime, nullable=False),
)
