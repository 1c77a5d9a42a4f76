from __future__ import annotations

import pytest

from keyplane.web.credentials import bearer_value, find_credential

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
