"""String fields of a body: any JSON text is either storable text or a 400, never an error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyplane.errors import InvalidArgument
from keyplane.web.body import string_field

# Every code point, lone surrogates and NUL included, as JSON can carry them.
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))


def _storable(value: str) -> bool:
    """UTF-8 text that PostgreSQL and SQLite both keep as it is."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


@given(ANY_TEXT)
def test_a_string_field_is_storable_text_or_invalid_argument(value: str) -> None:
    body = json.loads(json.dumps({"name": value}))
    if _storable(value):
        assert string_field(body, "name") == value
    else:
        with pytest.raises(InvalidArgument, match="'name' must not contain"):
            string_field(body, "name")


@pytest.mark.parametrize("value", ["\ud800", "\udc00x", "a\x00b"])
def test_unstorable_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument, match="NUL or unpaired surrogate"):
        string_field({"detail": value}, "detail")
