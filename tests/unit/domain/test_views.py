"""The objects the API and the command line show, field by field (never a secret)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from keyplane.domain.audit import AuditEntry
from keyplane.domain.networks import parse_networks
from keyplane.domain.records import Accesskey, Agent, Customer, Delivery
from keyplane.domain.scopes import parse_scopes
from keyplane.domain.views import (
    EXPAND_ALL,
    EXPANDABLE,
    accesskey_identity_view,
    accesskey_view,
    agent_view,
    audit_view,
    customer_view,
    delivery_view,
    parse_expand,
)
from tests.unit.domain import exactly

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


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (None, frozenset()),
        ("", frozenset()),
        (",", frozenset()),
        ("tm_last_used", {"tm_last_used"}),
        (" tm_disable , scopes ,", {"tm_disable", "scopes"}),
        ("rotated_to,allowed_networks", {"rotated_to", "allowed_networks"}),
        ("all", set(EXPANDABLE)),
        ("scopes, all", set(EXPANDABLE)),
    ],
)
def test_expand_names(raw: str | None, names: set[str]) -> None:
    assert parse_expand(raw) == frozenset(names)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("token", "unknown expand name(s): token"),
        ("scopes,zeta,alpha", "unknown expand name(s): alpha, zeta"),
        ("ALL", "unknown expand name(s): ALL"),
        ("tm_last_used tm_disable", "unknown expand name(s): tm_last_used tm_disable"),
    ],
)
def test_unknown_expand_names_are_refused_by_name(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        parse_expand(raw)


VOIPBIN_KEY = {
    "id": str(IDS[0]),
    "customer_id": str(IDS[1]),
    "name": "reporting",
    "detail": "nightly",
    "token_prefix": "vb_" + "r7N6rCCH",
    "tm_expire": "2026-12-27T21:29:11.635878Z",
    "tm_create": SHOWN,
    "tm_update": None,
    "tm_delete": None,
}


def test_an_access_key_is_voipbins_object_unless_more_is_asked_for() -> None:
    key = _key(
        tm_last_used=AT,
        tm_disable=AT,
        rotated_to=IDS[4],
        scopes=parse_scopes("read_only"),
        allowed_networks=parse_networks(["203.0.113.0/24"]),
    )
    view = accesskey_view(key)
    assert view == VOIPBIN_KEY
    assert list(view) == list(VOIPBIN_KEY)


def test_the_token_is_shown_after_the_detail_when_given() -> None:
    token = "vb_" + "r7N6rCCH" + "x" * 24
    view = accesskey_view(_key(), token)
    assert view == {**VOIPBIN_KEY, "token": token}
    assert list(view)[:6] == ["id", "customer_id", "name", "detail", "token", "token_prefix"]


def test_every_expanded_field_comes_after_voipbins() -> None:
    key = _key(
        tm_last_used=AT,
        tm_disable=LATER,
        rotated_to=IDS[4],
        scopes=parse_scopes("read_only"),
        allowed_networks=parse_networks(["203.0.113.0/24"]),
    )
    view = accesskey_view(key, expand=EXPAND_ALL)
    assert view == {
        **VOIPBIN_KEY,
        "tm_last_used": SHOWN,
        "tm_disable": "2026-12-27T21:29:11.635878Z",
        "rotated_to": str(IDS[4]),
        "scopes": [{"methods": ["GET", "HEAD", "OPTIONS"], "path_prefix": "/"}],
        "allowed_networks": ["203.0.113.0/24"],
    }
    assert list(view)[: len(VOIPBIN_KEY)] == list(VOIPBIN_KEY)


def test_an_updated_and_deleted_key_shows_when() -> None:
    view = accesskey_view(_key(tm_update=AT, tm_delete=LATER))
    assert view == {
        **VOIPBIN_KEY,
        "tm_update": SHOWN,
        "tm_delete": "2026-12-27T21:29:11.635878Z",
    }


@pytest.mark.parametrize("name", EXPANDABLE)
def test_each_expanded_field_alone_and_empty(name: str) -> None:
    view = accesskey_view(_key(), expand=frozenset({name}))
    assert view == {**VOIPBIN_KEY, name: None}


def _customer(**changes: object) -> Customer:
    fields: dict[str, object] = {
        "id": IDS[0],
        "name": "",
        "detail": "",
        "email": "",
        "webhook_method": "",
        "webhook_uri": "",
        "tm_create": AT,
        "tm_update": None,
        "tm_delete": None,
    }
    fields.update(changes)
    return Customer(**fields)  # type: ignore[arg-type]


VOIPBIN_DEFAULTS = {
    "billing_account_id": "00000000-0000-0000-0000-000000000000",
    "metadata": {"rtp_debug": False},
    "email_verified": False,
    "identity_verification_status": "none",
    "tm_deletion_scheduled": None,
    "tm_create": SHOWN,
}


def test_a_customer_leaves_out_its_empty_fields_as_voipbin_does() -> None:
    assert customer_view(_customer()) == {
        "id": str(IDS[0]),
        **VOIPBIN_DEFAULTS,
        "status": "active",
        "tm_update": None,
        "tm_delete": None,
    }


def test_a_customer_with_every_field() -> None:
    customer = _customer(
        name="Acme",
        detail="calls",
        email="ops@example.com",
        phone_number="+15555550100",
        address="1 Main St",
        webhook_method="POST",
        webhook_uri="https://example.com/hook",
        tm_update=AT,
        tm_delete=LATER,
    )
    view = customer_view(customer)
    assert view == {
        "id": str(IDS[0]),
        "name": "Acme",
        "detail": "calls",
        "email": "ops@example.com",
        "phone_number": "+15555550100",
        "address": "1 Main St",
        "webhook_method": "POST",
        "webhook_uri": "https://example.com/hook",
        **VOIPBIN_DEFAULTS,
        "status": "deleted",
        "tm_update": SHOWN,
        "tm_delete": "2026-12-27T21:29:11.635878Z",
    }
    assert list(view)[:8] == [
        "id",
        "name",
        "detail",
        "email",
        "phone_number",
        "address",
        "webhook_method",
        "webhook_uri",
    ]
