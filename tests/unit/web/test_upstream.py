"""The credential-free URI and cookie header a gateway forwards upstream."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import cookie_parser

from keyplane.web.upstream import (
    authorization_without_credentials,
    cookie_without_credentials,
    query_without_credentials,
    uri_without_credentials,
)

KEY = "vb_" + "A" * 32


def test_uri_keeps_everything_but_the_credentials() -> None:
    uri = f"/v1.0/calls?a=1&accesskey={KEY}&b=x%20y&acc%65sskey={KEY}&token=t&access+key=2"
    assert uri_without_credentials(uri) == "/v1.0/calls?a=1&b=x%20y&access+key=2"
    assert uri_without_credentials(f"/v1.0/calls?accesskey={KEY}") == "/v1.0/calls"
    assert uri_without_credentials("/v1.0/calls?a=1") is None
    assert uri_without_credentials("/v1.0/calls") is None
    assert uri_without_credentials("/v1.0/calls?tokens=1&myaccesskey=2") is None


def test_cookie_keeps_everything_but_the_credentials() -> None:
    assert cookie_without_credentials(f"a=1; accesskey={KEY};token=x;b=2") == "a=1; b=2"
    assert cookie_without_credentials(f" accesskey = {KEY} ") == ""
    assert cookie_without_credentials("myaccesskey=1; accesskey") == "myaccesskey=1; accesskey"


names = st.sampled_from(["a", "accesskey", "token", "acc%65sskey", "tok%65n", "x", "access+key"])
values = st.text(alphabet="abcXYZ019%+=_-.", max_size=8)


@given(st.lists(st.tuples(names, values), max_size=6))
def test_nothing_keyplane_reads_as_a_credential_survives(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{name}={value}" for name, value in pairs)
    cleaned = query_without_credentials(query)
    remaining = query if cleaned is None else cleaned
    read = dict(parse_qsl(remaining, keep_blank_values=True))
    assert "accesskey" not in read
    assert "token" not in read


cookie_names = st.sampled_from(["a", "accesskey", "token", " accesskey", "x", "tokenx"])


@given(st.lists(st.tuples(cookie_names, st.text(alphabet="abc019-._", max_size=6)), max_size=6))
def test_no_credential_cookie_survives(pairs: list[tuple[str, str]]) -> None:
    header = "; ".join(f"{name}={value}" for name, value in pairs)
    kept = cookie_parser(cookie_without_credentials(header))
    assert "accesskey" not in kept
    assert "token" not in kept


@pytest.mark.parametrize(
    "query",
    [
        f"AccessKey={KEY}",
        f"ACCESSKEY={KEY}",
        f"%2574oken={KEY}",
        f"%252574oken={KEY}",
        f"%25{'25' * 30}74oken={KEY}",
        f"tok%65n[]={KEY}",
        f"accesskey[key]={KEY}",
        f"%20accesskey%20={KEY}",
        f"accesskey%00={KEY}",
        f"Acc%65ssKey={KEY}",
        f"TOKEN={KEY}",
    ],
)
def test_every_spelling_a_framework_might_read_is_removed(query: str) -> None:
    assert uri_without_credentials(f"/v1.0/calls?{query}&x=1") == "/v1.0/calls?x=1"
    assert uri_without_credentials(f"/v1.0/calls?{query}") == "/v1.0/calls"


def test_separators_and_other_parameters_are_kept_as_they_came() -> None:
    assert query_without_credentials(f"x=1;accesskey={KEY}") == "x=1"
    assert query_without_credentials(f"q=a;b&accesskey={KEY}&c=d") == "q=a;b&c=d"
    assert query_without_credentials(f"accesskey={KEY};a=1&b=2") == "a=1&b=2"
    assert query_without_credentials(f"a=1;;token={KEY};b=2") == "a=1;b=2"
    assert query_without_credentials("a=%25%25token;b=%2574") is None  # values are not names
    assert query_without_credentials("tokens=1&myAccessKey=2") is None


@pytest.mark.parametrize(
    ("cookie", "kept"),
    [
        (f"AccessKey={KEY}; a=1", "a=1"),
        (f"a=1; TOKEN={KEY}", "a=1"),
        (f"a=1, accesskey={KEY}", "a=1"),
        (f"a=1,token={KEY}, b=2; c=3", "a=1, b=2; c=3"),
        (f"tok%65n={KEY}; a=1", "a=1"),
        ("keyplane_admin=eyJhbGciOiJIUzI1NiJ9.e30.sig; theme=dark", "theme=dark"),
        ("theme=dark; keyplane_admin_login=abc", "theme=dark"),
        ("KEYPLANE_Anything=1; theme=dark", "theme=dark"),
        ("list=a,b,c; theme=dark", "list=a,b,c; theme=dark"),  # a comma in a value
        ("keyplane=1; notkeyplane_x=2", "keyplane=1; notkeyplane_x=2"),
    ],
)
def test_every_credential_and_keyplane_cookie_is_removed(cookie: str, kept: str) -> None:
    assert cookie_without_credentials(cookie) == kept


@pytest.mark.parametrize(
    ("authorization", "forwarded"),
    [
        ("Bearer " + KEY, ""),
        ("bearer anything", ""),
        ("Token " + KEY, ""),
        ("token " + KEY, ""),
        ("ApiKey vb%5F" + "A" * 32, ""),
        (KEY, ""),
        ("JWT eyJhbGciOiJIUzI1NiJ9.e30.sig", ""),
        ("Basic " + base64.b64encode(f"{KEY}:".encode()).decode(), ""),
        ("Basic " + base64.b64encode(f"user:{KEY}".encode()).decode(), ""),
        ("Basic dXNlcjpwYXNz", "Basic dXNlcjpwYXNz"),
        ("Basic !!!not-base64", "Basic !!!not-base64"),
        ('Digest username="u", response="abc"', 'Digest username="u", response="abc"'),
    ],
)
def test_an_authorization_carrying_a_credential_is_not_forwarded(
    authorization: str, forwarded: str
) -> None:
    assert authorization_without_credentials(authorization) == forwarded


spellings = st.sampled_from(
    ["a", "accesskey", "AccessKey", "TOKEN", "%2574oken", "acc%65sskey", "token[]", "x"]
)


@given(st.lists(st.tuples(spellings, values, st.sampled_from("&;")), max_size=6))
def test_no_spelling_survives_a_lenient_parser(pairs: list[tuple[str, str, str]]) -> None:
    """A parser that splits on ``&`` and ``;``, ignores case and decodes names twice."""
    query = "".join(f"{separator}{name}={value}" for name, value, separator in pairs)
    cleaned = query_without_credentials(query)
    remaining = query if cleaned is None else cleaned
    for piece in remaining.replace(";", "&").split("&"):
        name = unquote_plus(unquote_plus(piece.partition("=")[0])).lower().partition("[")[0]
        assert name not in ("accesskey", "token"), (query, remaining)
