"""The policy for new passwords (NIST SP 800-63B): length in code points, a common list."""

from __future__ import annotations

import pytest

from keyplane.domain.passwords import check_new_password, generate_password
from keyplane.errors import InvalidArgument


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "PASSWORD_TOO_SHORT"),
        ("a", "PASSWORD_TOO_SHORT"),
        ("x" * 11, "PASSWORD_TOO_SHORT"),
        # "e" + a combining accent is one code point after NFKC: 11, not 12.
        ("caf" + "e\u0301" + "-o-lait", "PASSWORD_TOO_SHORT"),
        ("x" * 257, "PASSWORD_TOO_LONG"),
        ("qwertyuiop123", "PASSWORD_TOO_COMMON"),
        ("QWERTYUIOP123", "PASSWORD_TOO_COMMON"),
        ("1234567890123", "PASSWORD_TOO_COMMON"),
    ],
)
def test_refused(password: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_new_password(password)
    assert refused.value.reason == reason
    if len(password) > 3:
        assert password not in refused.value.message  # a password is never echoed


@pytest.mark.parametrize(
    "password",
    [
        "x" * 12,  # no composition rules
        "x" * 256,
        "correct horse battery staple",
        "\u00e9t\u00e9 \u00e0 la plage",
        "\U0001f511" * 12,
    ],
)
def test_accepted(password: str) -> None:
    check_new_password(password)


def test_the_message_says_how_long() -> None:
    with pytest.raises(InvalidArgument, match="has 5 characters; it needs at least 12"):
        check_new_password("short")


def test_generated_passwords_comply() -> None:
    for _ in range(50):
        check_new_password(generate_password())
