"""IP allowlists: parsing CIDRs, matching client addresses, and covering."""

from __future__ import annotations

import pytest

from keyplane.domain.networks import allows, covers, parse_networks

OFFICE = parse_networks(["203.0.113.0/24", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        ("203.0.113.7", True),
        ("::ffff:203.0.113.7", True),
        ("2001:db8::1", True),
        ("203.0.114.1", False),
        ("2001:db9::1", False),
        ("", False),
        ("testclient", False),
        ("203.0.113.7, 10.0.0.1", False),
    ],
)
def test_addresses(client: str, allowed: bool) -> None:
    assert OFFICE is not None
    assert allows(OFFICE, client) is allowed


@pytest.mark.parametrize(
    "raw",
    [[], "203.0.113.0/24", ["203.0.113.7/24"], ["nope"], [24], ["203.0.113.0/33"], ["x"] * 51],
)
def test_malformed_allowlists_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match=r"CIDR"):
        parse_networks(raw)


def test_covering() -> None:
    wide = parse_networks(["203.0.113.0/24"])
    narrow = parse_networks(["203.0.113.128/25"])
    assert covers(None, None)
    assert covers(wide, narrow)
    assert not covers(narrow, wide)
    assert not covers(wide, None)
    assert not covers(wide, parse_networks(["2001:db8::/32"]))
