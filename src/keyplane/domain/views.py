"""The JSON shapes of the contract, in one place for responses and events alike."""

from __future__ import annotations

from typing import Any

from keyplane.domain.records import Accesskey, Agent, Customer
from keyplane.domain.timefmt import format_timestamp


def accesskey_view(key: Accesskey, token: str | None = None) -> dict[str, Any]:
    """The access key object; ``token`` only in the creation response."""
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
    return view


def customer_view(customer: Customer) -> dict[str, Any]:
    return {
        "id": str(customer.id),
        "name": customer.name,
        "detail": customer.detail,
        "email": customer.email,
        "webhook_method": customer.webhook_method,
        "webhook_uri": customer.webhook_uri,
        "tm_create": format_timestamp(customer.tm_create),
        "tm_update": format_timestamp(customer.tm_update),
        "tm_delete": format_timestamp(customer.tm_delete),
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
