"""The clocks: the system's in UTC, and the frozen one tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keyplane.domain.clock import FrozenClock, SystemClock

START = datetime(2026, 12, 1, 10, 15, 30, tzinfo=UTC)


def test_the_system_clock_is_aware_and_in_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


def test_a_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(START)
    assert clock.now() == START
    assert clock.now() == START
    clock.advance(1.5)
    assert clock.now() == START + timedelta(seconds=1.5)
    clock.advance(-0.5)
    assert clock.now() == START + timedelta(seconds=1)
    clock.set(START - timedelta(days=3))
    assert clock.now() == START - timedelta(days=3)


def test_a_frozen_clock_without_a_start_starts_now_in_utc() -> None:
    clock = FrozenClock()
    assert clock.now().tzinfo is UTC
    first = clock.now()
    clock.advance(60)
    assert clock.now() - first == timedelta(seconds=60)
