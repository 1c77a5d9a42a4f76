from __future__ import annotations

import pytest

from keyplane.web.credentials import (
    bearer_value,
    canonical_cookie_header,
    find_credential,
    parse_cookies,
)

KEY = "vb" + "_" + "k" * 32


@pytest.mark.parametrize(
    ("cookies", "query", "authorization", "expected"),
    [
        ({}, {}, None, None),
        ({"token": "c"}, {"token": "q"}, "Bearer h", ("session", "c", "cookie")),
        ({}, {"token": "q"}, "Bearer h", ("session", "q", "query")),
        ({}, {}, "Bearer h", ("session", "h", "header")),
        ({"accesskey": "ca"}, {"token": "q"}, None, ("session", "q", "query")),
        ({"accesskey": "ca"}, {"accesskey": "qa"}, f"Bearer {KEY}", ("accesskey", "ca", "cookie")),
        ({}, {"accesskey": "qa"}, f"Bearer {KEY}", ("accesskey", "qa", "query")),
        ({}, {}, f"Bearer {KEY}", ("accesskey", KEY, "header")),
        ({}, {"accesskey": "qa"}, "Bearer jwt", ("session", "jwt", "header")),
        ({"token": ""}, {"accesskey": "qa"}, None, ("accesskey", "qa", "query")),
        ({}, {}, "Basic abc", None),
        ({}, {}, "Bearer ", None),
    ],
)
def test_precedence(
    cookies: dict[str, str],
    query: dict[str, str],
    authorization: str | None,
    expected: tuple[str, str, str] | None,
) -> None:
    found = find_credential(cookies, query, authorization)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (found.kind, found.value, found.source) == expected


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_value("bearer abc") == "abc"
    assert bearer_value("BEARER  abc ") == "abc"


def test_repr_hides_the_value() -> None:
    found = find_credential({}, {"accesskey": KEY}, None)
    assert KEY not in repr(found)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, {}),
        ("", {}),
        ("token=abc", {"token": "abc"}),
        ("token=a; accesskey=b", {"token": "a", "accesskey": "b"}),
        ("  token =  abc  ;accesskey=b", {"token": "abc", "accesskey": "b"}),
        ('token="abc"', {"token": "abc"}),
        ('token="', {"token": '"'}),
        ('token=""', {"token": ""}),
        ("token='abc'", {"token": "'abc'"}),
        ('token="abc', {"token": '"abc'}),
        ("token=a=b==", {"token": "a=b=="}),
        ("token=first; token=second", {"token": "second"}),
        ("token", {}),
        ("theme=dark; token=t; keyplane_admin=s", {"token": "t"}),
        ("Token=x; TOKEN=y", {}),
    ],
)
def test_cookies_are_read_by_name_and_the_last_wins(
    header: str | None, expected: dict[str, str]
) -> None:
    assert parse_cookies(header) == expected


def test_cookies_are_read_for_the_names_asked() -> None:
    header = "keyplane_admin=s; token=t; other=o"
    assert parse_cookies(header, {"keyplane_admin"}) == {"keyplane_admin": "s"}
    assert parse_cookies(header, ["other", "token"]) == {"token": "t", "other": "o"}


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("", ""),
        ("theme=dark", ""),
        ("token=abc.DEF-123_~+/=", "token=abc.DEF-123_~+/="),
        (f"accesskey={KEY}; theme=dark; token=t", f"accesskey={KEY}; token=t"),
        ("keyplane_admin=s; keyplane_admin_login=l", "keyplane_admin=s; keyplane_admin_login=l"),
        ("token=a b", "token=malformed"),
        ("token=a\\b; accesskey=x,y", "token=malformed; accesskey=malformed"),
        ('token="quoted"', "token=quoted"),
        ("token=", "token="),
        ("token=é", "token=malformed"),
    ],
)
def test_the_canonical_cookie_header_keeps_credential_and_admin_cookies_only(
    header: str, canonical: str
) -> None:
    assert canonical_cookie_header(header) == canonical


@pytest.mark.parametrize(
    ("authorization", "value"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("  Bearer abc  ", "abc"),
        ("Bearer a b", "a b"),
        ("Bearerabc", None),
        ("Token abc", None),
        ("bEaReR abc", "abc"),
    ],
)
def test_bearer_values(authorization: str | None, value: str | None) -> None:
    assert bearer_value(authorization) == value


def test_a_jwt_in_the_bearer_header_comes_before_an_access_key_cookie() -> None:
    found = find_credential({"accesskey": KEY}, {}, "Bearer e.y.j")
    assert found is not None
    assert (found.kind, found.value, found.source) == ("session", "e.y.j", "header")
