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
EVENT = "5f0c3c0e-8f0e-4a4c-9a57-4d3f1c2b9e11"


def test_the_secret_is_an_hmac_of_the_customer_and_generation() -> None:
    secret = signing_secret("server key", CUSTOMER, 3)
    material = f"keyplane-webhook-secret:{CUSTOMER}:3".encode()
    assert secret == "whsec_" + hmac.new(b"server key", material, hashlib.sha256).hexdigest()
    assert SECRET_PREFIX == "whsec_"
    assert len(secret) == len("whsec_") + 64
    assert signing_secret("server key", CUSTOMER, 4) != secret
    assert signing_secret("other key", CUSTOMER, 3) != secret
    assert signing_secret("server key", uuid.uuid4(), 3) != secret


def _mac(signed: bytes) -> str:
    return hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


def test_the_signature_header() -> None:
    v1 = _mac(b"1700000000." + BODY)
    v2 = _mac(b"1700000000." + EVENT.encode() + b"." + BODY)
    assert signature(SECRET, 1_700_000_000, EVENT, BODY) == f"t=1700000000,v1={v1},v2={v2}"


def test_v2_signs_the_event_id_and_v1_stays_as_it_was() -> None:
    """v1 is what receivers written before v2 check; v2 changes with the event id."""
    first = dict(item.split("=", 1) for item in signature(SECRET, 1000, EVENT, BODY).split(","))
    other = dict(
        item.split("=", 1) for item in signature(SECRET, 1000, str(uuid.uuid4()), BODY).split(",")
    )
    assert first["v1"] == other["v1"] == _mac(b"1000." + BODY)
    assert first["v2"] != other["v2"]


def test_a_genuine_delivery_verifies() -> None:
    header = signature(SECRET, 1000, EVENT, BODY)
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)
    assert verify_signature(SECRET, header, EVENT, BODY, now=1300, tolerance=300)  # at the bound
    assert verify_signature(SECRET, header, EVENT, BODY, now=700, tolerance=300)


def test_a_delivery_replayed_under_a_fresh_event_id_does_not_verify() -> None:
    """Within the tolerance, a captured delivery sent again with a new id is refused."""
    header = signature(SECRET, 1000, EVENT, BODY)
    fresh = str(uuid.uuid4())
    assert not verify_signature(SECRET, header, fresh, BODY, now=1010, tolerance=300)
    assert not verify_signature(SECRET, header, "", BODY, now=1010, tolerance=300)


def test_v1_alone_does_not_verify() -> None:
    """A header stripped of v2 (only the older, id-free v1 left) is refused."""
    header = signature(SECRET, 1000, EVENT, BODY).rsplit(",v2=", 1)[0]
    assert not verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)


@pytest.mark.parametrize(
    ("header", "body", "now"),
    [
        (None, BODY + b" ", 1000),  # the body changed
        (None, BODY, 1301),  # too late: a replay
        (None, BODY, 699),  # from the future
        ("v2=" + "0" * 64, BODY, 1000),  # no timestamp
        ("t=soon,v2=" + "0" * 64, BODY, 1000),  # not a number
        ("t=1000", BODY, 1000),  # no signature
        ("t=1000,v2=" + "0" * 64, BODY, 1000),  # a wrong signature
        ("", BODY, 1000),
    ],
    ids=["body", "late", "early", "no-t", "bad-t", "no-v2", "wrong-v2", "empty"],
)
def test_anything_else_does_not(header: str | None, body: bytes, now: int) -> None:
    header = signature(SECRET, 1000, EVENT, BODY) if header is None else header
    assert verify_signature(SECRET, header, EVENT, body, now=now, tolerance=300) is False


def test_another_secret_does_not_verify() -> None:
    header = signature(SECRET, 1000, EVENT, BODY)
    other = "whsec_" + "cd" * 32
    assert verify_signature(other, header, EVENT, BODY, now=1000, tolerance=300) is False


def test_a_value_holding_an_equals_sign_is_refused_not_an_error() -> None:
    assert verify_signature(SECRET, "t=1000,v2=a=b", EVENT, BODY, now=1000, tolerance=300) is False


@pytest.mark.parametrize("later", ["v2=a=b", "t=1000=1"])
def test_the_last_item_of_a_name_is_the_one_checked(later: str) -> None:
    """A genuine signature followed by another ``v2`` or ``t`` is judged by the later one."""
    header = signature(SECRET, 1000, EVENT, BODY) + "," + later
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300) is False


def test_items_without_a_value_are_ignored() -> None:
    header = "junk," + signature(SECRET, 1000, EVENT, BODY) + ",v0"
    assert verify_signature(SECRET, header, EVENT, BODY, now=1000, tolerance=300)


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 10.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 100.0), (30, 100.0)],
)
def test_backoff_doubles_up_to_the_ceiling(attempts: int, seconds: float) -> None:
    assert backoff(attempts, base=10.0, ceiling=100.0) == timedelta(seconds=seconds)
