"""The spinner of long work: only after a delay, only when someone watches, always stopped."""

from __future__ import annotations

import threading

import pytest

from keyplane.cli import output


class _Bar:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = False

    def add_task(self, description: str, total: int | None) -> int:
        return 1

    def start(self) -> None:
        self.started.set()

    def stop(self) -> None:
        self.stopped = True


def test_shown_when_the_work_outlasts_the_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = _Bar()
    monkeypatch.setattr(output, "progress_bar", lambda total: bar)
    with output.spinner("migrating", after=0.0):
        assert bar.started.wait(timeout=10)
    assert bar.stopped


def test_not_shown_for_short_work(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = _Bar()
    monkeypatch.setattr(output, "progress_bar", lambda total: bar)
    with output.spinner("migrating", after=3600.0):
        pass
    assert not bar.started.is_set()
    assert bar.stopped


def test_nothing_when_nobody_watches() -> None:
    with output.spinner("migrating", after=0.0):
        pass  # standard error is captured by pytest: no bar, no error
