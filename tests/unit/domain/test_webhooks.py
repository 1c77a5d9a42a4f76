"""The webhook rules: the derived secret, the signature a receiver checks, the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta

import pytest

from keyplane.domain.webhooks import (
    SECRET_PREFIX,
    backoff,
    signature,
    signing_secret,
    verify_signature,
)

CUSTOMER = uuid.UUID("dc60d72c-dd30-409d-9509-1c084f887f70")
SECRET = "whsec_" + "ab" * 32
BODY = b'{"type": "accesskey_created"}'


def test_the_secret_is_an_hmac_of_the_customer_and_generation() -> None:
    secret = signing_secret("server key", CUSTOMER, 3)
    material = f"keyplane-webhook-secret:{CUSTOMER}:3".encode()
    assert secret == "whsec_" + hmac.new(b"server key", material, hashlib.sha256).hexdigest()
    assert SECRET_PREFIX == "whsec_"
    assert len(secret) == len("whsec_") + 64
    assert signing_secret("server key", CUSTOMER, 4) != secret
    assert signing_secret("other key", CUSTOMER, 3) != secret
    assert signing_secret("server key", uuid.uuid4(), 3) != secret


def test_the_signature_header() -> None:
    mac = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_700_000_000, BODY) == f"t=1700000000,v1={mac}"


def test_a_genuine_delivery_verifies() -> None:
    header = signature(SECRET, 1000, BODY)
    assert verify_signature(SECRET, header, BODY, now=1000, tolerance=300)
    assert verify_signature(SECRET, header, BODY, now=1300, tolerance=300)  # at the bound
    assert verify_signature(SECRET, header, BODY, now=700, tolerance=300)


@pytest.mark.parametrize(
    ("header", "body", "now"),
    [
        (None, BODY + b" ", 1000),  # the body changed
        (None, BODY, 1301),  # too late: a replay
        (None, BODY, 699),  # from the future
        ("v1=" + "0" * 64, BODY, 1000),  # no timestamp
        ("t=soon,v1=" + "0" * 64, BODY, 1000),  # not a number
        ("t=1000", BODY, 1000),  # no signature
        ("t=1000,v1=" + "0" * 64, BODY, 1000),  # a wrong signature
        ("", BODY, 1000),
    ],
    ids=["body", "late", "early", "no-t", "bad-t", "no-v1", "wrong-v1", "empty"],
)
def test_anything_else_does_not(header: str | None, body: bytes, now: int) -> None:
    header = signature(SECRET, 1000, BODY) if header is None else header
    assert verify_signature(SECRET, header, body, now=now, tolerance=300) is False


def test_another_secret_does_not_verify() -> None:
    header = signature(SECRET, 1000, BODY)
    assert verify_signature("whsec_" + "cd" * 32, header, BODY, now=1000, tolerance=300) is False


def test_a_value_holding_an_equals_sign_is_refused_not_an_error() -> None:
    assert verify_signature(SECRET, "t=1000,v1=a=b", BODY, now=1000, tolerance=300) is False


@pytest.mark.parametrize("later", ["v1=a=b", "t=1000=1"])
def test_the_last_item_of_a_name_is_the_one_checked(later: str) -> None:
    """A genuine signature followed by another ``v1`` or ``t`` is judged by the later one."""
    header = signature(SECRET, 1000, BODY) + "," + later
    assert verify_signature(SECRET, header, BODY, now=1000, tolerance=300) is False


def test_items_without_a_value_are_ignored() -> None:
    header = "junk," + signature(SECRET, 1000, BODY) + ",v0"
    assert verify_signature(SECRET, header, BODY, now=1000, tolerance=300)


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 10.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 100.0), (30, 100.0)],
)
def test_backoff_doubles_up_to_the_ceiling(attempts: int, seconds: float) -> None:
    assert backoff(attempts, base=10.0, ceiling=100.0) == timedelta(seconds=seconds)
