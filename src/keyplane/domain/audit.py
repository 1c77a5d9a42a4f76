"""The audit trail: who changed what, when, from which address, in which request.

The web layer names the request's origin (its id and client address) once per
request; the services read it when they record an entry, so no use case needs
an HTTP parameter. The command line has no origin: its entries say
``operator`` and an empty address.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime

# Every type of entry, in docs/audit.md's order (a test compares the two).
AUDIT_TYPES: tuple[str, ...] = (
    "accesskey_created",
    "accesskey_updated",
    "accesskey_deleted",
    "accesskey_disabled",
    "accesskey_enabled",
    "accesskey_rotated",
    "agent_created",
    "agent_deleted",
    "agent_password_changed",
    "customer_created",
    "customer_updated",
    "customer_deleted",
    "customer_webhook_secret_replaced",
    "session_created",
    "session_ended",
)


def audit_types_from_query(raw: str | None) -> frozenset[str]:
    """The comma-separated ``type`` filter; empty means every type.

    ``ValueError`` names what is not a type, and the types there are.
    """
    types = frozenset(part.strip() for part in (raw or "").split(",") if part.strip())
    unknown = types.difference(AUDIT_TYPES)
    if unknown:
        raise ValueError(
            f"type names no audit entry type ({', '.join(sorted(unknown))}); "
            f"the types are {', '.join(AUDIT_TYPES)}."
        )
    return types


@dataclass(frozen=True, slots=True)
class Origin:
    request_id: str = ""
    address: str = ""


_origin: ContextVar[Origin | None] = ContextVar("keyplane_audit_origin", default=None)


def set_origin(origin: Origin) -> Token[Origin | None]:
    return _origin.set(origin)


def current_origin() -> Origin:
    return _origin.get() or Origin()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    id: uuid.UUID
    customer_id: uuid.UUID
    type: str  # what happened: one of AUDIT_TYPES
    actor_type: str  # agent, accesskey or operator
    actor_id: uuid.UUID
    subject_id: uuid.UUID  # the key, agent or customer it happened to
    address: str
    request_id: str
    tm_create: datetime
