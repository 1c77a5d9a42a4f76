from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain.pagination import decode_cursor, encode_cursor, page_size_from_query
from keyplane.domain.timefmt import format_timestamp

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.uuids())
def test_cursor_round_trip(moment: datetime, key_id: uuid.UUID) -> None:
    cursor = decode_cursor(encode_cursor(moment, key_id))
    assert (cursor.tm_create, cursor.id) == (moment, key_id)


@given(moments)
def test_voipbin_timestamp_cursor_is_accepted(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert text is not None
    cursor = decode_cursor(text)
    assert (cursor.tm_create, cursor.id) == (moment, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 10:15:30.123456", datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC)),
        ("2026-12-01 10:15:30", datetime(2026, 12, 1, 10, 15, 30, tzinfo=UTC)),
        ("2026-12-01T10:15:30Z", datetime(2026, 12, 1, 10, 15, 30, tzinfo=UTC)),
        ("2026-12-01T10:15:30.5Z", datetime(2026, 12, 1, 10, 15, 30, 500000, tzinfo=UTC)),
    ],
)
def test_voipbin_older_cursor_forms_are_accepted(text: str, expected: datetime) -> None:
    cursor = decode_cursor(text)
    assert (cursor.tm_create, cursor.id) == (expected, None)


@pytest.mark.parametrize("garbage", ["x", "!!!", "MjAyNi0xMi0wMQ", "2026-12-01", "bm90fGE"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(ValueError, match="page token"):
        decode_cursor(garbage)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        (None, 100),
        ("1", 1),
        ("50", 50),
        ("100", 100),
        ("0", 100),
        ("101", 100),
        ("-3", 100),
        ("", 100),
        ("+7", 7),
        ("9" * 5000, 100),
    ],
)
def test_page_size(raw: str | None, size: int) -> None:
    assert page_size_from_query(raw) == size


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e2", " ", " 5", "0x10", "\u0665"])
def test_page_size_that_is_not_an_integer_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not an integer"):
        page_size_from_query(raw)
