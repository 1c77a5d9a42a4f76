"""Webhook rules: the per-customer signing secret, the signature, the retry schedule.

The signing secret is never stored: it is derived from the server's webhook
key and the customer's id and secret generation (a counter, the only thing
kept), so the database holds nothing that could sign a delivery.

Signature header (documented in docs/webhooks.md)::

    Keyplane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>,
                        v2=<hex HMAC-SHA256(secret, "<t>.<event id>." + body)>

``v2`` binds the delivery to its ``Keyplane-Event-Id``, so a captured delivery
replayed with a fresh id fails it; ``v1`` is still sent for receivers written
against it.
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


def _mac(secret: str, signed: bytes) -> str:
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, event_id: str, body: bytes) -> str:
    """The value of the ``Keyplane-Signature`` header of the delivery of event ``event_id``."""
    v1 = _mac(secret, f"{timestamp}.".encode() + body)
    v2 = _mac(secret, f"{timestamp}.{event_id}.".encode() + body)
    return f"t={timestamp},v1={v1},v2={v2}"


def verify_signature(
    secret: str, header: str, event_id: str, body: bytes, now: int, tolerance: int
) -> bool:
    """What a receiver does (the documented snippet, in Python): ``v2`` over time, id and body."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, f"{timestamp}.{event_id}.".encode() + body)
    return hmac.compare_digest(expected, parts.get("v2", ""))


def backoff(attempts: int, base: float, ceiling: float) -> timedelta:
    """Exponential: base, 2·base, 4·base, … capped at ``ceiling`` seconds."""
    return timedelta(seconds=min(ceiling, base * (2 ** max(0, attempts - 1))))
