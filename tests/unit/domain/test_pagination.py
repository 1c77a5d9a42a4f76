from __future__ import annotations

import base64
import string
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain.pagination import (
    MAX_SEQ,
    decode_cursor,
    encode_cursor,
    page_size_from_query,
    seq_from_page_token,
)
from keyplane.domain.timefmt import format_timestamp
from tests.unit.domain import exactly

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
    with pytest.raises(ValueError, match=exactly("page_size is not an integer")):
        page_size_from_query(raw)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("007", 7),
        ("+007", 7),
        ("-007", 100),
        ("0" * 19 + "7", 7),
        ("0" * 5000 + "7", 7),
        ("+0" + "0" * 30 + "100", 100),
        ("-" + "0" * 30 + "5", 100),
        ("-0", 100),
        ("000", 100),
        ("99", 99),
        ("1000", 100),
        ("-100", 100),
        ("-" + "9" * 5000, 100),
    ],
)
def test_leading_zeros_and_signs(raw: str, size: int) -> None:
    """An integer is read by its value, as VoIPBIN does, whatever its spelling."""
    assert page_size_from_query(raw) == size


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_page_size_is_the_integer_when_in_range_and_100_otherwise(value: int) -> None:
    assert page_size_from_query(str(value)) == (value if 1 <= value <= 100 else 100)


@given(moments, st.uuids())
def test_own_tokens_are_86_url_safe_characters_without_padding(
    moment: datetime, key_id: uuid.UUID
) -> None:
    token = encode_cursor(moment, key_id)
    assert len(token) == 86
    assert set(token) <= set(string.ascii_letters + string.digits + "-_")


def _base64(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize(
    "garbage",
    [
        "é",
        "2026-12-01T10:15:30.123456Z|",
        _base64(b"2026-12-01T10:15:30.123456Z|not-a-uuid"),
        _base64(b"2026-12-01T10:15:30.123456Z"),
        _base64(b"\xff\xfe|\xff"),
        _base64("2026-12-01T10:15:30.123456Z|é".encode()),
        _base64(b"2026-12-01T10:15:30.123456Z|" + str(uuid.UUID(int=7)).encode())[:-1],
        "A" * 129,
        "2026-12-01T10:15:30.123456Z" + " " * 200,
    ],
)
def test_tokens_that_are_neither_form_are_refused(garbage: str) -> None:
    with pytest.raises(ValueError, match=exactly("not a page token issued by this service")):
        decode_cursor(garbage)


def test_a_token_of_ours_with_its_padding_is_read_too() -> None:
    key_id = uuid.UUID(int=7)
    moment = datetime(2026, 12, 1, 10, 15, 30, 123456, tzinfo=UTC)
    padded = base64.urlsafe_b64encode(f"{format_timestamp(moment)}|{key_id}".encode()).decode()
    assert decode_cursor(padded) == decode_cursor(encode_cursor(moment, key_id))
    assert decode_cursor(padded).id == key_id


def _token_of_length(length: int) -> str:
    """A valid cursor ``length`` characters long: its id in the long form ``uuid.UUID`` reads."""
    moment = b"2026-12-01T10:15:30.123456Z|urn:uuid:"
    hyphens = length * 3 // 4 - len(moment) - 32
    token = _base64(moment + b"-" * hyphens + b"7" * 32)
    assert len(token) == length
    return token


def test_a_token_of_up_to_128_characters_is_read_a_longer_one_refused() -> None:
    assert decode_cursor(_token_of_length(128)).id == uuid.UUID("7" * 32)
    with pytest.raises(ValueError, match=exactly("not a page token issued by this service")):
        decode_cursor(_token_of_length(132))


@pytest.mark.parametrize(
    ("token", "seq"),
    [
        (None, None),
        ("", None),
        ("0", 0),
        ("1", 1),
        ("12345", 12345),
        ("007", 7),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_a_sequence_page_token_is_a_decimal_seq(token: str | None, seq: int | None) -> None:
    assert seq_from_page_token(token) == seq
    assert MAX_SEQ == 2**63 - 1  # BIGINT, and SQLite's INTEGER


@pytest.mark.parametrize(
    "token",
    [
        "99999999999999999999",  # past BIGINT: the driver would fail on it
        "-99999999999999999999",
        "9223372036854775808",  # MAX_SEQ + 1
        "0" * 20,  # digits past what a seq is written with
        "-1",
        "+1",
        " 1",
        "1 ",
        "1.5",
        "1e3",
        "0x10",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads it, a token never holds it
        "x",
        "9" * 5000,
    ],
)
def test_a_sequence_page_token_out_of_range_or_malformed_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match=exactly("not a page token issued by this service")):
        seq_from_page_token(token)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_every_seq_reads_back(seq: int) -> None:
    assert seq_from_page_token(str(seq)) == seq
