"""Agent permission bits, the one permission check, and the rule for secrets."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from keyplane.domain.networks import Networks
from keyplane.domain.scopes import Scopes
from keyplane.errors import PermissionDenied

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
    # An access key's own expiry: what a restricted key makes never outlives it.
    # None: a session or the operator.
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

    @property
    def restricted(self) -> bool:
        """A key with scopes or an IP allowlist; sessions and the operator never are."""
        return self.scopes is not None or self.allowed_networks is not None

    @classmethod
    def operator(cls) -> Identity:
        """The command line: whoever can reach the database is a project super admin."""
        return cls("operator", uuid.UUID(int=0), uuid.UUID(int=0), int(Permission.ALL))


def has_permission(identity: Identity, customer_id: uuid.UUID, required: int) -> bool:
    """A project super admin passes everywhere; others need their own customer and a bit."""
    if identity.permission & Permission.PROJECT_SUPER_ADMIN:
        return True
    return identity.customer_id == customer_id and bool(identity.permission & required)


SECRET_KEEPERS = int(Permission.CUSTOMER_ADMIN)


def may_keep_secrets(identity: Identity, customer_id: uuid.UUID) -> bool:
    """May read the customer's secrets and say where its events go.

    The webhook secret forges deliveries and the webhook URI receives every
    key's name and id, so these are writes whatever the HTTP method: they need
    the customer admin permission and an unrestricted credential. An IP
    allowlist counts as a restriction here: the secret, once read, works from
    anywhere, and events sent elsewhere leave the allowlist's networks.
    """
    return has_permission(identity, customer_id, SECRET_KEEPERS) and not identity.restricted


def require_secret_keeper(
    identity: Identity, customer_id: uuid.UUID, action: str, *, hint: str = ""
) -> None:
    """``PermissionDenied`` saying why, unless ``may_keep_secrets``.

    ``action`` begins the message ("Reading the audit log"); ``hint`` ends it.
    """
    if not has_permission(identity, customer_id, SECRET_KEEPERS):
        why = f"{action} needs the customer admin permission."
    elif identity.restricted:
        why = (
            f"{action} needs an unrestricted credential (a session, or an access key without "
            "scopes or an IP allowlist): a restricted key may not read the customer's secrets "
            "or audit log, nor redirect its events."
        )
    else:
        return
    raise PermissionDenied(f"{why} {hint}".rstrip(), reason="PERMISSION_DENIED")
