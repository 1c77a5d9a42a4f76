"""The JSON shapes of the contract, in one place for responses and events alike."""

from __future__ import annotations

from typing import Any

from keyplane.domain.audit import AuditEntry
from keyplane.domain.networks import networks_to_json
from keyplane.domain.permissions import Permission
from keyplane.domain.records import Accesskey, Agent, Customer, Delivery
from keyplane.domain.scopes import scopes_to_json
from keyplane.domain.timefmt import format_timestamp

# Fields beyond VoIPBIN's access key object, shown only when asked for by name
# (``?expand=tm_last_used,tm_disable`` or ``?expand=all``): a VoIPBIN client
# never sees them.
EXPANDABLE = ("tm_last_used", "tm_disable", "rotated_to", "scopes", "allowed_networks")
EXPAND_ALL = frozenset(EXPANDABLE)


def parse_expand(raw: str | None) -> frozenset[str]:
    """The names in a comma-separated ``expand`` value; ``ValueError`` for an unknown one."""
    if not raw:
        return frozenset()
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if "all" in names:
        return EXPAND_ALL
    unknown = names - EXPAND_ALL
    if unknown:
        raise ValueError(f"unknown expand name(s): {', '.join(sorted(unknown))}")
    return frozenset(names)


def accesskey_view(
    key: Accesskey, token: str | None = None, *, expand: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The access key object; ``token`` only in the creation response.

    ``expand`` adds fields beyond VoIPBIN's object, by name, after its own.
    """
    view: dict[str, Any] = {
        "id": str(key.id),
        "customer_id": str(key.customer_id),
        "name": key.name,
        "detail": key.detail,
    }
    if token is not None:
        view["token"] = token
    view.update(
        token_prefix=key.token_prefix,
        tm_expire=format_timestamp(key.tm_expire),
        tm_create=format_timestamp(key.tm_create),
        tm_update=format_timestamp(key.tm_update),
        tm_delete=format_timestamp(key.tm_delete),
    )
    if "tm_last_used" in expand:
        view["tm_last_used"] = format_timestamp(key.tm_last_used)
    if "tm_disable" in expand:
        view["tm_disable"] = format_timestamp(key.tm_disable)
    if "rotated_to" in expand:
        view["rotated_to"] = None if key.rotated_to is None else str(key.rotated_to)
    if "scopes" in expand:
        view["scopes"] = scopes_to_json(key.scopes)
    if "allowed_networks" in expand:
        view["allowed_networks"] = networks_to_json(key.allowed_networks)
    return view


NIL_UUID = "00000000-0000-0000-0000-000000000000"
# VoIPBIN leaves these out when empty (``omitempty``), so its email format holds.
_OMITTED_WHEN_EMPTY = (
    "name",
    "detail",
    "email",
    "phone_number",
    "address",
    "webhook_method",
    "webhook_uri",
)


def customer_view(customer: Customer) -> dict[str, Any]:
    """VoIPBIN's customer object, with its fields keyplane has no use for at their defaults."""
    view: dict[str, Any] = {"id": str(customer.id)}
    for field in _OMITTED_WHEN_EMPTY:
        value = getattr(customer, field)
        if value:
            view[field] = value
    view.update(
        billing_account_id=NIL_UUID,
        metadata={"rtp_debug": False},
        email_verified=False,
        status="deleted" if customer.tm_delete is not None else "active",
        identity_verification_status="none",
        tm_deletion_scheduled=None,
        tm_create=format_timestamp(customer.tm_create),
        tm_update=format_timestamp(customer.tm_update),
        tm_delete=format_timestamp(customer.tm_delete),
    )
    return view


def accesskey_identity_view(key: Accesskey) -> dict[str, Any]:
    """``GET /v1.0/me`` for an access key: who the caller is (never the token)."""
    return {
        "type": "accesskey",
        "id": str(key.id),
        "customer_id": str(key.customer_id),
        "name": key.name,
        "token_prefix": key.token_prefix,
        "permission": int(Permission.CUSTOMER_ADMIN),
        "tm_expire": format_timestamp(key.tm_expire),
    }


def agent_view(agent: Agent) -> dict[str, Any]:
    """An agent as shown to operators: never the password hash."""
    return {
        "id": str(agent.id),
        "customer_id": str(agent.customer_id),
        "username": agent.username,
        "name": agent.name,
        "detail": agent.detail,
        "permission": agent.permission,
        "tm_create": format_timestamp(agent.tm_create),
        "tm_update": format_timestamp(agent.tm_update),
        "tm_delete": format_timestamp(agent.tm_delete),
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """One line of a customer's webhook delivery status."""
    return {
        "id": str(delivery.id),
        "type": delivery.type,
        "status": delivery.delivery_status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "tm_create": format_timestamp(delivery.tm_create),
        "tm_next_attempt": format_timestamp(delivery.tm_next_attempt),
        "tm_delivered": format_timestamp(delivery.tm_delivered),
    }


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    """One entry of the audit log, as the API and the command line show it."""
    return {
        "id": str(entry.id),
        "type": entry.type,
        "actor": {"type": entry.actor_type, "id": str(entry.actor_id)},
        "subject_id": str(entry.subject_id),
        "address": entry.address,
        "request_id": entry.request_id,
        "tm_create": format_timestamp(entry.tm_create),
    }
