"""Scope rules: parsing, matching whole segments, refusing ambiguous paths, and covering."""

from __future__ import annotations

import pytest

from keyplane.domain.scopes import (
    HEADER_NAMES,
    READ_ONLY_SCOPES,
    allows,
    canonical_path,
    covers,
    parse_scopes,
    scopes_from_json,
    scopes_to_json,
)
from tests.unit.domain import exactly

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
        ("GET", "/v1.0/calls/caf%C3%A9", False),  # non-ASCII: see test_non_ascii_...
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


def _rule(methods: list[str], prefix: str) -> list[dict[str, object]]:
    return [{"methods": methods, "path_prefix": prefix}]


ALL_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def test_every_http_method_of_the_api_may_be_named_at_once() -> None:
    scopes = parse_scopes(_rule([method.lower() for method in ALL_METHODS], "/v1.0"))
    assert scopes_to_json(scopes) == [{"methods": sorted(ALL_METHODS), "path_prefix": "/v1.0"}]
    assert scopes is not None
    for method in ALL_METHODS:
        assert allows(scopes, method, "/v1.0/calls")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_read_only_allows_the_read_methods_anywhere(method: str) -> None:
    assert allows(READ_ONLY_SCOPES, method, "/v1.0/accesskeys/7")
    assert allows(READ_ONLY_SCOPES, method.lower(), "/")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_read_only_refuses_the_other_methods(method: str) -> None:
    assert not allows(READ_ONLY_SCOPES, method, "/v1.0/accesskeys/7")


def test_at_most_fifty_rules() -> None:
    assert len(parse_scopes(_rule(["GET"], "/") * 50) or ()) == 50
    with pytest.raises(ValueError, match=exactly("at most 50 rules")):
        parse_scopes(_rule(["GET"], "/") * 51)


def test_a_path_prefix_has_at_most_512_characters() -> None:
    longest = "/" + "a" * 511
    assert scopes_to_json(parse_scopes(_rule(["GET"], longest))) == [
        {"methods": ["GET"], "path_prefix": longest}
    ]
    with pytest.raises(ValueError, match="path_prefix"):
        parse_scopes(_rule(["GET"], longest + "a"))


RULE_SHAPE = 'each rule is an object {"methods": [...], "path_prefix": "/..."}'
METHODS_LIST = "'methods' must be a non-empty list of HTTP methods"
METHODS_KNOWN = "'methods' may hold only DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
PLAIN_PREFIX = (
    "'path_prefix' must be a plain absolute path such as /v1.0/calls "
    "(letters, digits and -._~!$&'()*,= between slashes; no query, "
    "no dot or empty segments, no percent-encoding)"
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("write", 'give "read_only" or a non-empty list of rules'),
        ([], 'give "read_only" or a non-empty list of rules'),
        (["GET /"], RULE_SHAPE),
        ([{"methods": "GET", "path_prefix": "/"}], METHODS_LIST),
        ([{"path_prefix": "/"}], METHODS_LIST),
        (_rule([], "/"), METHODS_LIST),
        (_rule(["TRACE"], "/"), METHODS_KNOWN),
        (_rule(["GET", 1], "/"), METHODS_KNOWN),
        (_rule([1], "/"), METHODS_KNOWN),
        (_rule(["GET"], "v1.0"), PLAIN_PREFIX),
        ([{"methods": ["GET"]}], PLAIN_PREFIX),
        (_rule(["GET"], "/a%2fb"), PLAIN_PREFIX),
        (_rule(["GET"], "/a%41"), PLAIN_PREFIX),
        (_rule(["GET"], "/a b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a//b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a/./b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a\\b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a;b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a/..;"), PLAIN_PREFIX),
        (_rule(["GET"], "/a+b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a:b"), PLAIN_PREFIX),
        (_rule(["GET"], "/a@b"), PLAIN_PREFIX),
        (_rule(["GET"], "/caf\u00e9"), PLAIN_PREFIX),
        (_rule(["GET"], "/a/..."), PLAIN_PREFIX),
        (_rule(["GET"], "/a\tb"), PLAIN_PREFIX),
    ],
)
def test_the_message_says_what_is_wrong(raw: object, message: str) -> None:
    """The message is the one the API answers with (after ``'scopes': ``)."""
    with pytest.raises(ValueError, match=exactly(message)):
        parse_scopes(raw)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1.0/call%73/7", True),  # the server reads /v1.0/calls/7
        ("GET", "/v1.0/%63alls", True),
        ("GET", "/v1.0/calls?next=/a//b/../c", True),  # the query is not the path
        ("GET", "/v1.0/calls?", True),
        ("GET", "/v1.0/calls/", True),
        ("GET", "/v1.0/calls//", False),
        ("GET", "/v1.0/calls/x/", True),
        ("GET", "/v1.0/calls/%2E%2E/accesskeys", False),
        ("GET", "/v1.0/calls/%2F", False),
        ("GET", "/v1.0/calls/%5Cx", False),
        ("GET", "/v1.0/calls/%5cx", False),
        ("GET", "/v1.0/calls/%25", False),
        ("GET", "/v1.0/calls/..", False),
        ("GET", "/v1.0/calls/x/../..", False),
        ("GET", "/./v1.0/calls", False),
        ("GET", "//v1.0/calls", False),
        ("GET", "?/v1.0/calls", False),
        ("GET", "", False),
    ],
)
def test_the_path_is_read_as_the_server_reads_it(method: str, path: str, allowed: bool) -> None:
    assert CALLS is not None
    assert allows(CALLS, method, path) is allowed


def test_a_prefix_ending_in_a_slash_allows_only_what_is_below_it() -> None:
    below = parse_scopes(_rule(["GET"], "/v1.0/calls/"))
    assert below is not None
    assert allows(below, "GET", "/v1.0/calls/7")
    assert allows(below, "GET", "/v1.0/calls/")
    assert not allows(below, "GET", "/v1.0/calls")
    assert not allows(below, "GET", "/v1.0/callsign")


def test_a_rule_covers_itself_and_narrower_rules_only() -> None:
    narrow = parse_scopes(_rule(["GET"], "/v1.0/calls"))
    assert covers(narrow, narrow)
    assert covers(narrow, parse_scopes(_rule(["GET"], "/v1.0/calls/7")))
    assert not covers(narrow, parse_scopes(_rule(["GET", "POST"], "/v1.0/calls")))
    assert not covers(narrow, parse_scopes(_rule(["GET"], "/v1.0")))
    two = parse_scopes(_rule(["GET"], "/v1.0/calls") + _rule(["POST"], "/v1.0/agents"))
    assert covers(two, parse_scopes(_rule(["POST"], "/v1.0/agents/7")))
    assert not covers(narrow, two)
    assert covers(parse_scopes(_rule(["GET"], "/")), READ_ONLY_SCOPES) is False
    assert covers(parse_scopes(_rule(["GET", "HEAD", "OPTIONS"], "/")), READ_ONLY_SCOPES)


def test_json_round_trip() -> None:
    scopes = parse_scopes(_rule(["post", "GET"], "/v1.0/calls") + _rule(["DELETE"], "/v1.0/agents"))
    stored = scopes_to_json(scopes)
    assert stored == [
        {"methods": ["GET", "POST"], "path_prefix": "/v1.0/calls"},
        {"methods": ["DELETE"], "path_prefix": "/v1.0/agents"},
    ]
    assert scopes_from_json(stored) == scopes
    assert scopes_to_json(None) is None
    assert scopes_from_json(None) is None
    assert scopes_to_json(READ_ONLY_SCOPES) == [
        {"methods": ["GET", "HEAD", "OPTIONS"], "path_prefix": "/"}
    ]


@pytest.mark.parametrize(
    "path",
    [
        "v1.0/calls",
        "*",
        "",
        "/../v1.0/accesskeys",
        "/./v1.0",
        "//v1.0/accesskeys",
        "/v1.0/calls\\..\\accesskeys",
        "/v1.0/%2e%2e/accesskeys",
    ],
)
def test_even_read_only_refuses_a_path_that_could_mean_something_else(path: str) -> None:
    """``/`` is a prefix like any other: it matches no ambiguous or relative path."""
    assert not allows(READ_ONLY_SCOPES, "GET", path)


def test_a_backslash_under_the_prefix_is_refused() -> None:
    assert CALLS is not None
    assert not allows(CALLS, "GET", "/v1.0/calls/a\\..\\..\\accesskeys")


# Paths that some common server reads as ``..`` (or otherwise than they are
# written), each under the prefix when read literally.
READ_AS_DOT_DOT = [
    "/v1.0/calls/..;/accesskeys",  # Tomcat, Jetty, Spring: a segment parameter
    "/v1.0/calls/..;x=1/accesskeys",
    "/v1.0/calls/..%3b/accesskeys",
    "/v1.0/calls/..%3B/accesskeys",
    "/v1.0/calls/%2e%2e%3b/accesskeys",
    "/v1.0/calls/%c0%ae%c0%ae/accesskeys",  # overlong UTF-8
    "/v1.0/calls/%C0%AE./accesskeys",
    "/v1.0/calls/%e0%80%ae%e0%80%ae/accesskeys",
    "/v1.0/calls/..%c0%afaccesskeys",  # an overlong slash
    "/v1.0/calls/\uff0e\uff0e/accesskeys",  # fullwidth full stops: ".." after NFKC
    "/v1.0/calls/%EF%BC%8E%EF%BC%8E/accesskeys",
    "/v1.0/calls/\u2024\u2024/accesskeys",  # one dot leader each: "." after NFKC
    "/v1.0/calls/..%20/accesskeys",  # trimmed
    "/v1.0/calls/..%09/accesskeys",
    "/v1.0/calls/.. /accesskeys",
    "/v1.0/calls/..\t/accesskeys",
    "/v1.0/calls/..%00/accesskeys",
    "/v1.0/calls/..%0d%0a/accesskeys",
    "/v1.0/calls/..+/accesskeys",  # "+" is a space to some decoders
    "/v1.0/calls/%u002e%u002e/accesskeys",  # IIS's %u escapes
    "/v1.0/calls/.%2e/accesskeys",
    "/v1.0/calls/.../accesskeys",  # Windows trims trailing dots
    "/v1.0/calls/..::$INDEX_ALLOCATION/accesskeys",  # NTFS streams
    "/v1.0/calls/..%5caccesskeys",
    "/v1.0/calls/..%2faccesskeys",
    "/v1.0/calls/%252e%252e/accesskeys",  # decoded twice by some
]


@pytest.mark.parametrize("path", READ_AS_DOT_DOT)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_path_some_server_reads_as_dot_dot_matches_no_rule(method: str, path: str) -> None:
    assert CALLS is not None
    assert not allows(CALLS, method, path)
    assert not allows(CALLS, method, path + "?page_size=1")
    assert not allows(parse_scopes(_rule(["GET", "POST"], "/")) or (), method, path)
    assert canonical_path(path) is None


@pytest.mark.parametrize(
    "segment",
    [
        "7;jsessionid=x",  # a segment parameter, anywhere
        "7%3b",
        ";",
        "caf\u00e9",  # non-ASCII, raw (a header value read as latin-1) or encoded
        "caf%C3%A9",
        "%80",
        "%ff",
        "%c3",  # invalid UTF-8
        "a b",  # whitespace and control characters, raw or encoded
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a%20b",
        "a%09b",
        "a%0ab",
        "a%7fb",
        "a+b",
        "a:b",  # not in the allow-list either
        "a@b",
        'a"b',
        "a<b",
        "a|b",
        "a^b",
        "a`b",
        "a{b}",
        "a[b]",
        "a#b",
        "a%21b",  # an escape of anything but an unreserved character
        "a%2Fb",
        "a%5Cb",
        "a%25",
        "a%",
        "a%4",
        "a%zz",
        "a%-1",
        "a%+1",
    ],
)
def test_a_segment_outside_the_allow_list_matches_no_rule(segment: str) -> None:
    path = f"/v1.0/calls/{segment}/x"
    assert CALLS is not None
    assert not allows(CALLS, "GET", path)
    assert not allows(READ_ONLY_SCOPES, "GET", path)
    assert canonical_path(path) is None


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/v1.0/calls", "/v1.0/calls"),
        ("/v1.0/calls/", "/v1.0/calls/"),
        ("/", "/"),
        ("/v1.0/calls/a-b_c.d~e", "/v1.0/calls/a-b_c.d~e"),
        ("/v1.0/calls/!$&'()*,=", "/v1.0/calls/!$&'()*,="),
        ("/v1.0/calls/.well-known/a..b/x.", "/v1.0/calls/.well-known/a..b/x."),
        ("/v1.0/call%73/%37", "/v1.0/calls/7"),  # unreserved escapes decoded
        ("/v1.0/calls/a%2eb%7E%2D%5f", "/v1.0/calls/a.b~-_"),
    ],
)
def test_the_canonical_path_decodes_unreserved_characters_only(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical
    assert CALLS is not None
    assert allows(CALLS, "GET", path) is canonical.startswith("/v1.0/calls")


OVERRIDE_HEADERS = [
    "x-http-method-override",
    "X-HTTP-Method-Override",
    "x-http-method",
    "X-Method-Override",
    "x_http_method_override",  # Rack and PHP read "_" as "-"
    "X_HTTP-Method_Override",
]


@pytest.mark.parametrize("name", OVERRIDE_HEADERS)
def test_a_method_override_header_is_checked_as_the_method_it_names(name: str) -> None:
    assert CALLS is not None
    for value in ("DELETE", "delete", " Delete ", "PUT", "", "POST, DELETE", "FETCH"):
        assert not allows(CALLS, "POST", "/v1.0/calls/1", [(name, value)]), value
    # Allowed only when the key may run the request as its own method and the one named.
    assert allows(CALLS, "POST", "/v1.0/calls/1", [(name, "get")])
    assert not allows(READ_ONLY_SCOPES, "POST", "/v1.0/calls/1", [(name, "GET")])
    assert not allows(CALLS, "POST", "/v1.0/calls/1", [(name, "GET"), (name, "DELETE")])


@pytest.mark.parametrize(
    "query",
    [
        "_method=DELETE",
        "_method=delete",
        "_METHOD=Delete",
        "%5Fmethod=DELETE",  # percent-encoded in its name or value
        "%5fmethod=DELETE",
        "_%6Dethod=DELETE",
        "%5F%4D%45%54%48%4F%44=%44ELETE",
        "page_size=1&_method=DELETE",
        "_method=GET&_method=DELETE",
        "x=1;_method=DELETE",  # Rack 2 also splits at ";"
        "x=1&+_method=DELETE",  # leading spaces dropped
        "x=1& _method=DELETE",
        ".method=DELETE",  # PHP reads "." and " " in a name as "_"
        "_method=",
        "_method",
        "_method=FETCH",
    ],
)
def test_a_method_query_parameter_is_checked_as_the_method_it_names(query: str) -> None:
    assert CALLS is not None
    assert not allows(CALLS, "POST", f"/v1.0/calls/1?{query}")
    assert not allows(READ_ONLY_SCOPES, "GET", f"/v1.0/calls/1?{query}")


@pytest.mark.parametrize(
    "query", ["_method=GET", "_method=post", "payment_method=DELETE", "method=DELETE", "x_method=x"]
)
def test_a_query_that_names_an_allowed_method_or_none_is_allowed(query: str) -> None:
    assert CALLS is not None
    assert allows(CALLS, "POST", f"/v1.0/calls/1?{query}")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-Urlencoded",
        " application/x-www-form-urlencoded ;charset=UTF-8",
        "multipart/form-data; boundary=x",
        "MULTIPART/FORM-DATA",
        "multipart/mixed; boundary=x",  # Rack parses these into parameters too
        "multipart/related",
    ],
)
def test_a_form_body_is_refused_whatever_the_rules(content_type: str) -> None:
    """A form may carry ``_method``, which no gateway sees: no rule can allow it."""
    everything = parse_scopes(_rule(ALL_METHODS, "/"))
    assert everything is not None
    assert CALLS is not None
    for method in ("POST", "PUT", "GET"):
        assert not allows(everything, method, "/v1.0/calls/1", [("content-type", content_type)])
        assert not allows(CALLS, method, "/v1.0/calls/1", [("Content-Type", content_type)])


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/plain", ""]
)
def test_other_bodies_are_judged_by_the_method_alone(content_type: str) -> None:
    assert CALLS is not None
    assert allows(CALLS, "POST", "/v1.0/calls/1", [("content-type", content_type)])
    assert not allows(CALLS, "DELETE", "/v1.0/calls/1", [("content-type", content_type)])


def test_headers_the_scopes_do_not_read_are_ignored() -> None:
    assert CALLS is not None
    assert allows(CALLS, "POST", "/v1.0/calls/1", [("x-forwarded-method", "DELETE")])
    assert allows(CALLS, "POST", "/v1.0/calls/1", [("accept", "multipart/form-data")])


def test_the_web_layer_is_told_every_header_name_the_scopes_read() -> None:
    for name in [*OVERRIDE_HEADERS, "Content-Type"]:
        assert name.lower() in HEADER_NAMES
    assert "content_type" not in HEADER_NAMES  # not a Content-Type to anyone
    assert all(name == name.lower() for name in HEADER_NAMES)
