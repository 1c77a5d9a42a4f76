"""Agent permission bits and the one permission check."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from keyplane.domain.networks import Networks
from keyplane.domain.scopes import Scopes

IdentityType = Literal["agent", "accesskey", "operator"]


class Permission(enum.IntFlag):
    NONE = 0
    PROJECT_SUPER_ADMIN = 0x0001
    CUSTOMER_AGENT = 0x0010
    CUSTOMER_ADMIN = 0x0020
    CUSTOMER_MANAGER = 0x0040
    ALL = 0xFFFF


MAX_PERMISSION = int(Permission.ALL)
_DOCUMENTED_BITS = int(
    Permission.PROJECT_SUPER_ADMIN
    | Permission.CUSTOMER_AGENT
    | Permission.CUSTOMER_ADMIN
    | Permission.CUSTOMER_MANAGER
)


def is_documented(permission: int) -> bool:
    """A non-empty combination of the documented bits (1, 16, 32, 64), or 65535 (all)."""
    if permission == MAX_PERMISSION:
        return True
    return permission > 0 and permission & ~_DOCUMENTED_BITS == 0


def is_super_admin(permission: int) -> bool:
    return bool(permission & Permission.PROJECT_SUPER_ADMIN)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is, once authenticated."""

    type: IdentityType
    id: uuid.UUID
    customer_id: uuid.UUID
    permission: int
    scopes: Scopes | None = None  # a restricted key's rules; None: unrestricted
    allowed_networks: Networks | None = None  # a key's IP allowlist; None: anywhere
    # An access key's own expiry: what it makes never outlives it. None: a session
    # or the operator, whose keys' lifetimes only ``expire``'s bounds limit.
    tm_expire: datetime | None = None

    @classmethod
    def for_accesskey(
        cls,
        key_id: uuid.UUID,
        customer_id: uuid.UUID,
        scopes: Scopes | None = None,
        allowed_networks: Networks | None = None,
        tm_expire: datetime | None = None,
    ) -> Identity:
        # An access key acts as a customer admin of its own customer, never as a super admin.
        return cls(
            "accesskey",
            key_id,
            customer_id,
            int(Permission.CUSTOMER_ADMIN),
            scopes,
            allowed_networks,
            tm_expire,
        )

    @classmethod
    def operator(cls) -> Identity:
        """The command line: whoever can reach the database is a project super admin."""
        return cls("operator", uuid.UUID(int=0), uuid.UUID(int=0), int(Permission.ALL))


def has_permission(identity: Identity, customer_id: uuid.UUID, required: int) -> bool:
    """A project super admin passes everywhere; others need their own customer and a bit."""
    if identity.permission & Permission.PROJECT_SUPER_ADMIN:
        return True
    return identity.customer_id == customer_id and bool(identity.permission & required)
