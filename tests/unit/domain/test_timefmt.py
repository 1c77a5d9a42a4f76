from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyplane.domain.timefmt import format_timestamp, parse_cursor_timestamp, parse_timestamp
from tests.unit.domain import exactly

FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
moments = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@given(moments)
def test_format_has_six_fraction_digits_and_z(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert text is not None
    assert FORMAT.fullmatch(text)


@given(moments)
def test_round_trip(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert text is not None
    assert parse_timestamp(text) == moment


@given(moments, st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_other_offsets_are_shown_in_utc(moment: datetime, minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    assert format_timestamp(local) == format_timestamp(moment)


@pytest.fixture
def local_zone_three_hours_east() -> Iterator[None]:
    """The process's local time zone is UTC+3 (a POSIX rule: no zone database needed)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "XYZ-3"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("local_zone_three_hours_east")
def test_the_hosts_time_zone_changes_nothing() -> None:
    assert time.localtime(0).tm_hour == 3  # the zone is in effect
    moment = datetime(2026, 12, 1, 22, 15, 30, 123456, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-12-01T22:15:30.123456Z"
    east = moment.astimezone(timezone(timedelta(hours=9)))
    assert format_timestamp(east) == "2026-12-01T22:15:30.123456Z"


def test_none_is_null() -> None:
    assert format_timestamp(None) is None


def test_whole_seconds_still_carry_microseconds() -> None:
    assert format_timestamp(datetime(2026, 12, 1, 10, 15, 30, tzinfo=UTC)) == (
        "2026-12-01T10:15:30.000000Z"
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "text",
    ["2026-12-01T10:15:30Z", "2026-12-01 10:15:30.123456Z", "2026-12-01T10:15:30.123456", ""],
)
def test_parse_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


FORM = "not a timestamp of the form YYYY-MM-DDTHH:MM:SS.ffffffZ"


@pytest.mark.parametrize(
    ("call", "text", "message"),
    [
        (parse_timestamp, "2026-12-01T10:15:30.12345xZ", FORM),
        (parse_timestamp, "2026-12-01T10:15:30.1234567Z", FORM),
        (parse_timestamp, "2026-12-01T10:15:30.123456z", FORM),
        (parse_cursor_timestamp, "2026-12-01", "not a timestamp cursor: '2026-12-01'"),
        (parse_cursor_timestamp, "x", "not a timestamp cursor: 'x'"),
    ],
)
def test_a_refusal_names_the_form_expected(
    call: Callable[[str], datetime], text: str, message: str
) -> None:
    """The message a developer reads; the API and the command line say it their own way."""
    with pytest.raises(ValueError, match=exactly(message)):
        call(text)


def test_a_naive_datetime_is_refused_with_the_reason() -> None:
    with pytest.raises(
        ValueError, match=exactly("naive datetimes are not allowed; keyplane works in UTC")
    ):
        format_timestamp(datetime(2026, 1, 1))
