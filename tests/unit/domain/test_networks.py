"""IP allowlists: parsing CIDRs, matching client addresses, and covering."""

from __future__ import annotations

import pytest

from keyplane.domain.networks import (
    allows,
    covers,
    networks_from_json,
    networks_to_json,
    parse_networks,
)
from tests.unit.domain import exactly

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


def _cidrs(count: int) -> list[str]:
    return [f"10.0.{index}.0/24" for index in range(count)]


def test_at_most_fifty_networks() -> None:
    assert parse_networks(_cidrs(50)) is not None
    with pytest.raises(
        ValueError, match=exactly("give a list of 1 to 50 CIDRs, such as 203.0.113.0/24")
    ):
        parse_networks(_cidrs(51))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, None),
        ([], "give a list of 1 to 50 CIDRs, such as 203.0.113.0/24"),
        ("203.0.113.0/24", "give a list of 1 to 50 CIDRs, such as 203.0.113.0/24"),
        ([24], "each network is a CIDR string, such as 203.0.113.0/24"),
        (
            ["203.0.113.7/24"],
            "each network is a CIDR with no host bits set, such as 203.0.113.0/24",
        ),
        (["nope"], "each network is a CIDR with no host bits set, such as 203.0.113.0/24"),
    ],
)
def test_the_message_says_what_is_wrong(raw: object, message: str | None) -> None:
    """The message is the one the API answers with (after ``'allowed_networks': ``)."""
    if message is None:
        assert parse_networks(raw) is None
        return
    with pytest.raises(ValueError, match=exactly(message)):
        parse_networks(raw)


def test_surrounding_spaces_are_ignored_and_order_is_kept() -> None:
    parsed = parse_networks([" 203.0.113.0/24 ", "2001:db8::/32", "10.0.0.0/8"])
    assert networks_to_json(parsed) == ["203.0.113.0/24", "2001:db8::/32", "10.0.0.0/8"]


def test_json_round_trip() -> None:
    assert networks_to_json(None) is None
    assert networks_from_json(None) is None
    assert networks_from_json(networks_to_json(OFFICE)) == OFFICE
    assert networks_to_json(OFFICE) == ["203.0.113.0/24", "2001:db8::/32"]


def test_an_ipv4_mapped_address_is_matched_as_ipv4_only() -> None:
    v4 = parse_networks(["203.0.113.0/24"])
    v6 = parse_networks(["::ffff:0:0/96"])
    assert v4 is not None
    assert v6 is not None
    assert allows(v4, "::ffff:203.0.113.7")
    assert not allows(v6, "::ffff:203.0.113.7")
    assert not allows((), "203.0.113.7")


def test_covering_needs_every_wanted_network_inside_one_held_network() -> None:
    both = parse_networks(["203.0.113.0/24", "2001:db8::/32"])
    assert covers(both, parse_networks(["2001:db8:1::/48", "203.0.113.0/24"]))
    assert covers(both, both)
    assert not covers(both, parse_networks(["203.0.113.0/24", "198.51.100.0/24"]))
    assert not covers(parse_networks(["2001:db8::/32"]), parse_networks(["203.0.113.0/24"]))
