"""Webhook rules: the per-customer signing secret, the signature, the retry schedule.

The signing secret is never stored: it is derived from the server's webhook
key and the customer's id and secret generation (a counter, the only thing
kept), so the database holds nothing that could sign a delivery.

Signature header (documented in docs/webhooks.md)::

    Keyplane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta

SIGNATURE_HEADER = "Keyplane-Signature"
EVENT_ID_HEADER = "Keyplane-Event-Id"  # the idempotency key: the same on every retry
IDEMPOTENCY_HEADER = "Idempotency-Key"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
METHODS = ("POST", "PUT")


def signing_secret(server_key: str, customer_id: uuid.UUID, generation: int) -> str:
    """The customer's current secret: ``whsec_`` and 64 hex characters."""
    material = f"keyplane-webhook-secret:{customer_id}:{generation}".encode()
    return SECRET_PREFIX + hmac.new(server_key.encode(), material, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the ``Keyplane-Signature`` header."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, now: int, tolerance: int) -> bool:
    """What a receiver does (the documented snippet, in Python)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff(attempts: int, base: float, ceiling: float) -> timedelta:
    """Exponential: base, 2·base, 4·base, … capped at ``ceiling`` seconds."""
    return timedelta(seconds=min(ceiling, base * (2 ** max(0, attempts - 1))))
