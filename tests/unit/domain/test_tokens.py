from __future__ import annotations

import hashlib
import re

from hypothesis import assume, given
from hypothesis import strategies as st

from keyplane.domain import tokens

FORMAT = re.compile(r"^vb_[A-Za-z0-9]{32}$")


def test_generated_tokens_have_the_contract_format() -> None:
    for _ in range(200):
        token = tokens.generate_token()
        assert FORMAT.fullmatch(token)
        assert len(token) == 35
        assert tokens.is_wellformed(token)


def test_generated_tokens_are_distinct() -> None:
    assert len({tokens.generate_token() for _ in range(1000)}) == 1000


def test_hash_is_lowercase_hex_sha256_of_the_whole_token() -> None:
    token = tokens.generate_token()
    assert tokens.hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", tokens.hash_token(token))


def test_display_prefix_is_the_first_eleven_characters() -> None:
    token = tokens.generate_token()
    assert tokens.display_prefix(token) == token[:11]
    assert tokens.display_prefix(token).startswith("vb_")


@given(st.text(alphabet=tokens.ALPHABET, min_size=32, max_size=32))
def test_every_body_of_32_alphanumerics_is_wellformed(body: str) -> None:
    assert tokens.is_wellformed("vb" + "_" + body)


@given(st.text(max_size=60))
def test_wellformed_agrees_with_the_contract_regex(value: str) -> None:
    assert tokens.is_wellformed(value) == bool(FORMAT.fullmatch(value))


@given(
    st.text(alphabet=tokens.ALPHABET, min_size=32, max_size=32),
    st.integers(min_value=0, max_value=34),
    st.characters(blacklist_characters=tokens.ALPHABET),
)
def test_one_foreign_character_makes_a_token_malformed(body: str, where: int, bad: str) -> None:
    token = "vb" + "_" + body
    broken = token[:where] + bad + token[where + 1 :]
    assume(broken != token)  # "_" put where "_" already stands changes nothing
    assert not tokens.is_wellformed(broken)


def test_lengths_other_than_35_are_malformed() -> None:
    body = "a" * 32
    assert not tokens.is_wellformed("vb" + "_" + body[:-1])
    assert not tokens.is_wellformed("vb" + "_" + body + "a")
    assert not tokens.is_wellformed("VB" + "_" + body)
    assert not tokens.is_wellformed("")
