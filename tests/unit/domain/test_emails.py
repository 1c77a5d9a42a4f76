"""The shape check for a customer's contact email."""

from __future__ import annotations

import pytest

from keyplane.domain.emails import email_problem


@pytest.mark.parametrize(
    "email",
    [
        "",  # no contact
        "ops@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.org",
        "\u00e9lodie@exemple.fr",
        "x" * 64 + "@" + "d" * 185 + ".com",  # 254 characters
    ],
)
def test_accepted(email: str) -> None:
    assert email_problem(email) is None


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("ops", "exactly one '@'"),
        ("ops@example@com.org", "exactly one '@'"),
        ("@example.com", "nothing before"),
        ("ops@localhost", "a domain with a dot"),
        ("ops@example.", "a domain with a dot"),
        ("ops@.example.com", "a domain with a dot"),
        ("ops@example..com", "a domain with a dot"),
        ("ops@", "a domain with a dot"),
        ("ops @example.com", "space"),
        (" ops@example.com", "space"),
        ("ops@example.com\n", "space"),
        ("ops\x00@example.com", "control"),
        ("ops\x1b[2J@example.com", "control"),
        ("x" * 65 + "@example.com", "more than 64"),
        ("x" * 64 + "@" + "d" * 186 + ".com", "longer than 254"),
    ],
)
def test_refused(email: str, problem: str) -> None:
    found = email_problem(email)
    assert found is not None
    assert problem in found
