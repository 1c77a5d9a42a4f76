"""The URL `keyplane serve` prints: the address to use from this machine."""

from __future__ import annotations

import pytest

from keyplane.cli.listening import shown_url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("keys.internal", "http://keys.internal:8080"),
    ],
)
def test_shown_url(host: str, expected: str) -> None:
    assert shown_url("http", host, 8080) == expected
