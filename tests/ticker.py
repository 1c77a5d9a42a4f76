"""A monotonic clock that moves only when the test moves it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest


class Ticker:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tick(monkeypatch: pytest.MonkeyPatch, *modules: Any, now: float = 1_000.0) -> Ticker:
    """A ticker in place of ``time.monotonic`` for these modules only (not the event loop's)."""
    ticker = Ticker(now)
    for module in modules:
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=ticker))
    return ticker
