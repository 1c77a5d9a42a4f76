"""Plain records passed between the store, the services and the web layer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from keyplane.domain.networks import Networks
from keyplane.domain.scopes import Scopes


@dataclass(frozen=True, slots=True)
class Customer:
    id: uuid.UUID
    name: str
    detail: str
    email: str
    webhook_method: str
    webhook_uri: str
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None
    phone_number: str = ""
    address: str = ""
    webhook_secret_generation: int = 0


@dataclass(frozen=True, slots=True)
class Agent:
    id: uuid.UUID
    customer_id: uuid.UUID
    username: str
    password_hash: str
    name: str
    detail: str
    permission: int
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None


@dataclass(frozen=True, slots=True)
class Accesskey:
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    detail: str
    token_hash: str
    token_prefix: str
    tm_expire: datetime
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None
    # Beyond VoIPBIN's object: shown only on request (``?expand=``).
    tm_last_used: datetime | None = None
    tm_disable: datetime | None = None
    rotated_to: uuid.UUID | None = None
    scopes: Scopes | None = None  # None: unrestricted
    allowed_networks: Networks | None = None  # None: from anywhere

    def is_live(self, now: datetime) -> bool:
        """Authenticates only while not deleted, not disabled and not expired."""
        return self.tm_delete is None and self.tm_disable is None and self.tm_expire > now


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Accesskey]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event in the outbox and how its webhook delivery went."""

    seq: int
    id: uuid.UUID
    type: str
    delivery_status: str
    attempts: int
    last_error: str
    tm_create: datetime
    tm_next_attempt: datetime | None
    tm_delivered: datetime | None
