"""The credential-free URI and cookie header a gateway forwards upstream."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import cookie_parser

from keyplane.web.upstream import (
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
