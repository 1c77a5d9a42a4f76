"""Typed objects of the keyplane HTTP contract, as the server sends them.

Ids are :class:`uuid.UUID`, timestamps timezone-aware :class:`datetime.datetime`
in UTC (``None`` for a moment that has not happened). Each object keeps the
JSON it was read from in ``raw``, exactly as the server sent it. Secrets
(``token``) never appear in a ``repr``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "Accesskey",
    "AccesskeyIdentity",
    "AccesskeyPage",
    "Agent",
    "Customer",
    "LoginResult",
    "Verification",
]

_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.strptime(str(value), _TIMESTAMP).replace(tzinfo=UTC)


def _required_moment(value: Any) -> datetime:
    moment = _moment(value)
    if moment is None:
        raise ValueError("a required timestamp is null")
    return moment


def _optional_uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


@dataclass(frozen=True, slots=True)
class Accesskey:
    """An access key. ``token`` is set only in the answer that created it (or rotated it)."""

    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    detail: str
    token_prefix: str
    tm_expire: datetime
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None
    token: str | None = field(default=None, repr=False)
    # Beyond VoIPBIN's object: present when asked for (``expand``) or after a lifecycle call.
    tm_last_used: datetime | None = None
    tm_disable: datetime | None = None
    rotated_to: uuid.UUID | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def state(self) -> Literal["active", "disabled", "rotating", "deleted"]:
        """What the key is now, as far as this object says."""
        if self.tm_delete is not None:
            return "deleted"
        if self.tm_disable is not None:
            return "disabled"
        if self.rotated_to is not None:
            return "rotating"
        return "active"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Accesskey:
        return cls(
            id=uuid.UUID(data["id"]),
            customer_id=uuid.UUID(data["customer_id"]),
            name=data["name"],
            detail=data["detail"],
            token_prefix=data["token_prefix"],
            tm_expire=_required_moment(data["tm_expire"]),
            tm_create=_required_moment(data["tm_create"]),
            tm_update=_moment(data["tm_update"]),
            tm_delete=_moment(data["tm_delete"]),
            token=data.get("token"),
            tm_last_used=_moment(data.get("tm_last_used")),
            tm_disable=_moment(data.get("tm_disable")),
            rotated_to=_optional_uuid(data.get("rotated_to")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class AccesskeyPage:
    """One page of ``GET /v1.0/accesskeys``; ``next_page_token`` is ``""`` after the last."""

    result: list[Accesskey]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Customer:
    """The caller's customer. Fields VoIPBIN leaves out when empty are ``""`` here."""

    id: uuid.UUID
    name: str
    detail: str
    email: str
    phone_number: str
    address: str
    webhook_method: str
    webhook_uri: str
    billing_account_id: uuid.UUID
    metadata: Mapping[str, Any]
    email_verified: bool
    status: str
    identity_verification_status: str
    tm_deletion_scheduled: datetime | None
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Customer:
        return cls(
            id=uuid.UUID(data["id"]),
            name=data.get("name", ""),
            detail=data.get("detail", ""),
            email=data.get("email", ""),
            phone_number=data.get("phone_number", ""),
            address=data.get("address", ""),
            webhook_method=data.get("webhook_method", ""),
            webhook_uri=data.get("webhook_uri", ""),
            billing_account_id=uuid.UUID(data["billing_account_id"]),
            metadata=dict(data["metadata"]),
            email_verified=bool(data["email_verified"]),
            status=data["status"],
            identity_verification_status=data["identity_verification_status"],
            tm_deletion_scheduled=_moment(data["tm_deletion_scheduled"]),
            tm_create=_required_moment(data["tm_create"]),
            tm_update=_moment(data["tm_update"]),
            tm_delete=_moment(data["tm_delete"]),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Agent:
    """``whoami`` for a session: the agent who logged in."""

    id: uuid.UUID
    customer_id: uuid.UUID
    username: str
    name: str
    detail: str
    permission: int
    tm_create: datetime
    tm_update: datetime | None
    tm_delete: datetime | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agent:
        return cls(
            id=uuid.UUID(data["id"]),
            customer_id=uuid.UUID(data["customer_id"]),
            username=data["username"],
            name=data["name"],
            detail=data["detail"],
            permission=int(data["permission"]),
            tm_create=_required_moment(data["tm_create"]),
            tm_update=_moment(data["tm_update"]),
            tm_delete=_moment(data["tm_delete"]),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class AccesskeyIdentity:
    """``whoami`` for an access key: the key itself (never its token)."""

    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    token_prefix: str
    permission: int
    tm_expire: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccesskeyIdentity:
        return cls(
            id=uuid.UUID(data["id"]),
            customer_id=uuid.UUID(data["customer_id"]),
            name=data["name"],
            token_prefix=data["token_prefix"],
            permission=int(data["permission"]),
            tm_expire=_required_moment(data["tm_expire"]),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The answer to a login: the username and the session token (kept out of ``repr``)."""

    username: str
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``GET /auth/verify`` said about a credential.

    ``valid`` is true when the request would pass; otherwise ``reason`` and
    ``message`` say why (the server gives one answer for every invalid
    credential, so that a guesser learns nothing: unknown, expired, deleted
    and disabled all read ``INVALID_CREDENTIALS``).
    """

    valid: bool
    status_code: int
    customer_id: uuid.UUID | None = None
    identity_type: str | None = None
    identity_id: uuid.UUID | None = None
    permission: int | None = None
    reason: str = ""
    message: str = ""
    request_id: str = ""
