"""What the admin page shows of a key: states, times for people, expiry warnings, questions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from keyplane.domain.records import Accesskey
from keyplane.web.admin import present
from keyplane.web.admin.session import csrf_key, csrf_matches, csrf_token

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KEY = Accesskey(
    id=uuid.UUID(int=1),
    customer_id=uuid.UUID(int=2),
    name="reporting",
    detail="",
    token_hash="0" * 64,
    token_prefix="vb" + "_abcdefgh",
    tm_expire=NOW + timedelta(days=30),
    tm_create=NOW - timedelta(days=1),
    tm_update=None,
    tm_delete=None,
)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW + timedelta(days=3, hours=5), "in 3 days"),
        (NOW + timedelta(days=1), "in 1 day"),
        (NOW + timedelta(hours=23, minutes=59), "in 23 hours"),
        (NOW - timedelta(minutes=2), "2 minutes ago"),
        (NOW + timedelta(seconds=10), "in less than a minute"),
        (None, "never"),
    ],
)
def test_relative(moment: datetime | None, expected: str) -> None:
    assert present.relative(moment, NOW) == expected


def test_absolute_is_utc_whatever_the_zone() -> None:
    moment = datetime(2026, 12, 1, 12, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert present.absolute(moment) == "2026-12-01 12:30 UTC"
    assert present.absolute(None) == "-"


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "active"),
        ({"tm_disable": NOW}, "disabled"),
        ({"rotated_to": uuid.UUID(int=3)}, "rotating"),
        ({"tm_expire": NOW}, "expired"),
        ({"tm_expire": NOW, "tm_disable": NOW}, "disabled"),
    ],
)
def test_state(changes: dict[str, object], state: str) -> None:
    assert present.state_of(replace(KEY, **changes), NOW) == state  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "warning"),
    [
        (timedelta(days=14), ""),
        (timedelta(days=14) - timedelta(seconds=1), "soon"),
        (timedelta(seconds=1), "soon"),
        (timedelta(0), "expired"),
        (-timedelta(days=2), "expired"),
    ],
)
def test_expiry_warning_under_14_days(left: timedelta, warning: str) -> None:
    row = present.key_row(replace(KEY, tm_expire=NOW + left), NOW)
    assert row.expiry_warning == warning
    if warning == "expired" and left:
        assert row.expires_relative == "expired 2 days ago"


def test_confirmations_name_the_key() -> None:
    row = present.key_row(KEY, NOW)
    for action in present.ACTIONS:
        assert "“reporting” (vb_abcdefgh…)" in present.confirmation(action, row)
    assert "stops working at once" in present.confirmation("rotate", row, 0)
    assert "grace period of 1 day" in present.confirmation("rotate", row, 86_400)
    unnamed = present.key_row(replace(KEY, name=""), NOW)
    assert present.confirmation("delete", unnamed).startswith("Delete the key vb_abcdefgh…?")


@pytest.mark.parametrize(
    ("choice", "custom", "expected"),
    [
        ("1", "", 86_400),
        ("365", "9", 365 * 86_400),
        ("custom", " 7 ", 7 * 86_400),
        ("custom", "0", "A key lives at least one day: keyplane refuses shorter lifetimes."),
        ("custom", "1.5", "Give the key's lifetime in whole days (at least 1)."),
        ("", "", "Give the key's lifetime in whole days (at least 1)."),
    ],
)
def test_expire_seconds(choice: str, custom: str, expected: int | str) -> None:
    assert present.expire_seconds(choice, custom) == expected


def test_csrf_tokens_belong_to_one_session_and_one_server() -> None:
    key = csrf_key(b"s" * 32)
    token = csrf_token(key, "session-a")
    assert csrf_matches(token, csrf_token(key, "session-a"))
    assert not csrf_matches(token, csrf_token(key, "session-b"))
    assert not csrf_matches(token, csrf_token(csrf_key(b"t" * 32), "session-a"))
    assert not csrf_matches(token, None)
    assert not csrf_matches(token, "")
