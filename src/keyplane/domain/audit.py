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
    type: str  # what happened: accesskey_created, agent_deleted, session_created, ...
    actor_type: str  # agent, accesskey or operator
    actor_id: uuid.UUID
    subject_id: uuid.UUID  # the key, agent or customer it happened to
    address: str
    request_id: str
    tm_create: datetime
