"""The objects the API and the command line show, field by field (never a secret)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from keyplane.domain.audit import AuditEntry
from keyplane.domain.records import Accesskey, Agent, Delivery
from keyplane.domain.views import accesskey_identity_view, agent_view, audit_view, delivery_view

AT = datetime(2026, 11, 27, 21, 29, 11, 635878, tzinfo=UTC)
SHOWN = "2026-11-27T21:29:11.635878Z"
LATER = AT + timedelta(days=30)
IDS = [uuid.UUID(int=n) for n in range(1, 6)]


def _key(**changes: object) -> Accesskey:
    fields: dict[str, object] = {
        "id": IDS[0],
        "customer_id": IDS[1],
        "name": "reporting",
        "detail": "nightly",
        "token_hash": "h" * 64,
        "token_prefix": "vb_" + "r7N6rCCH",
        "tm_expire": LATER,
        "tm_create": AT,
        "tm_update": None,
        "tm_delete": None,
    }
    fields.update(changes)
    return Accesskey(**fields)  # type: ignore[arg-type]


def test_an_access_key_as_the_caller() -> None:
    assert accesskey_identity_view(_key()) == {
        "type": "accesskey",
        "id": str(IDS[0]),
        "customer_id": str(IDS[1]),
        "name": "reporting",
        "token_prefix": "vb_" + "r7N6rCCH",
        "permission": 32,
        "tm_expire": "2026-12-27T21:29:11.635878Z",
    }


def test_an_agent_never_shows_its_password_hash() -> None:
    agent = Agent(IDS[0], IDS[1], "alice", "$argon2id$secret", "Alice", "ops", 32, AT, AT, LATER)
    assert agent_view(agent) == {
        "id": str(IDS[0]),
        "customer_id": str(IDS[1]),
        "username": "alice",
        "name": "Alice",
        "detail": "ops",
        "permission": 32,
        "tm_create": SHOWN,
        "tm_update": SHOWN,
        "tm_delete": "2026-12-27T21:29:11.635878Z",
    }


def test_a_delivery() -> None:
    delivery = Delivery(7, IDS[0], "accesskey_created", "pending", 2, "HTTP 503", AT, LATER, AT)
    assert delivery_view(delivery) == {
        "id": str(IDS[0]),
        "type": "accesskey_created",
        "status": "pending",
        "attempts": 2,
        "last_error": "HTTP 503",
        "tm_create": SHOWN,
        "tm_next_attempt": "2026-12-27T21:29:11.635878Z",
        "tm_delivered": SHOWN,
    }


def test_an_audit_entry() -> None:
    entry = AuditEntry(
        3,
        IDS[0],
        IDS[1],
        "accesskey_disabled",
        "accesskey",
        IDS[2],
        IDS[3],
        "198.51.100.23",
        "5f0c",
        AT,
    )
    assert audit_view(entry) == {
        "id": str(IDS[0]),
        "type": "accesskey_disabled",
        "actor": {"type": "accesskey", "id": str(IDS[2])},
        "subject_id": str(IDS[3]),
        "address": "198.51.100.23",
        "request_id": "5f0c",
        "tm_create": SHOWN,
    }


def test_a_key_is_live_until_deleted_disabled_or_expired() -> None:
    assert _key().is_live(AT)
    assert _key().is_live(LATER - timedelta(microseconds=1))
    assert not _key().is_live(LATER)  # expiry is exclusive
    assert not _key(tm_delete=AT).is_live(AT)
    assert not _key(tm_disable=AT).is_live(AT)
