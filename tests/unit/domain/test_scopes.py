"""Scope rules: parsing, matching whole segments, refusing ambiguous paths, and covering."""

from __future__ import annotations

import pytest

from keyplane.domain.scopes import READ_ONLY_SCOPES, allows, covers, parse_scopes

CALLS = parse_scopes([{"methods": ["GET", "post"], "path_prefix": "/v1.0/calls"}])


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1.0/calls", True),
        ("GET", "/v1.0/calls/7?x=1", True),
        ("post", "/v1.0/calls/", True),
        ("DELETE", "/v1.0/calls/7", False),
        ("GET", "/v1.0/callsign", False),
        ("GET", "/v1.0/other", False),
        ("GET", "/v1.0/calls/../accesskeys", False),
        ("GET", "/v1.0/calls/%2e%2e/accesskeys", False),
        ("GET", "/v1.0/calls%2F..%2Faccesskeys", False),
        ("GET", "/v1.0/calls//x", False),
        ("GET", "/v1.0/calls/.", False),
        ("GET", "/v1.0/calls\\x", False),
        ("GET", "/v1.0/calls/%252e%252e", False),
        ("GET", "v1.0/calls", False),
        ("GET", "/v1.0/calls/caf%C3%A9", True),
    ],
)
def test_rules_match_whole_segments_and_refuse_ambiguous_paths(
    method: str, path: str, allowed: bool
) -> None:
    assert CALLS is not None
    assert allows(CALLS, method, path) is allowed


def test_read_only() -> None:
    assert parse_scopes("read_only") == READ_ONLY_SCOPES
    assert allows(READ_ONLY_SCOPES, "GET", "/anything/at/all")
    assert allows(READ_ONLY_SCOPES, "HEAD", "/")
    assert not allows(READ_ONLY_SCOPES, "POST", "/v1.0/accesskeys")


@pytest.mark.parametrize(
    "raw",
    [
        "write",
        [],
        {},
        [{"methods": [], "path_prefix": "/"}],
        [{"methods": ["GET"], "path_prefix": "v1.0"}],
        [{"methods": ["GET"], "path_prefix": "/a/../b"}],
        [{"methods": ["GET"], "path_prefix": "/a%2fb"}],
        [{"methods": ["GET"], "path_prefix": "/a?b=1"}],
        [{"methods": ["TRACE"], "path_prefix": "/"}],
        [{"methods": ["GET", 1], "path_prefix": "/"}],
        [{"methods": ["GET"]}],
        ["GET /"],
        [{"methods": ["GET"], "path_prefix": "/"}] * 51,
    ],
)
def test_malformed_scopes_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match=r"rule|methods|path_prefix"):
        parse_scopes(raw)


def test_covering() -> None:
    wide = parse_scopes([{"methods": ["GET", "POST"], "path_prefix": "/v1.0"}])
    narrow = parse_scopes([{"methods": ["GET"], "path_prefix": "/v1.0/calls"}])
    other = parse_scopes([{"methods": ["GET"], "path_prefix": "/v1.0x"}])
    assert covers(None, None)
    assert covers(None, narrow)
    assert covers(wide, narrow)
    assert not covers(narrow, wide)
    assert not covers(wide, None)  # unrestricted is more than any scopes
    assert not covers(wide, other)
    assert covers(READ_ONLY_SCOPES, narrow)
    assert not covers(READ_ONLY_SCOPES, wide)
