"""Secrets and where events go: the webhook secret, the audit log and the webhook itself need
the customer admin permission and an unrestricted credential, whatever the HTTP method."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keyplane.domain.permissions import Permission
from keyplane.services.container import Services
from tests.factories import OPERATOR, bearer, login
from tests.integration.conftest import (
    PASSWORD,
    Tenant,
    assert_error,
    create_key,
    quick_agent,
)

CUSTOMER = "/v1.0/customer"
SECRET = "/v1.0/customer/webhook_secret"
AUDIT = "/v1.0/audit"
DELIVERIES = "/v1.0/customer/webhook_deliveries"
HOOK = "https://hooks.example.com/keyplane"
RESTRICTED = "needs an unrestricted credential"


async def key_with(
    client: httpx.AsyncClient, tenant: Tenant, **restrictions: Any
) -> dict[str, str]:
    return bearer((await create_key(client, tenant.auth, **restrictions))["token"])


async def session_of(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, permission: Permission
) -> dict[str, str]:
    agent = await quick_agent(services, tenant.customer, permission=int(permission))
    return bearer(await login(client, agent.username, PASSWORD))


async def secret_of(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.get(SECRET, headers=tenant.auth)
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def hooked(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """The tenant's customer with a webhook, set by its unrestricted key."""
    response = await client.put(
        CUSTOMER,
        json={"name": "acme", "webhook_uri": HOOK, "webhook_method": "PUT"},
        headers=tenant.auth,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, why: str) -> None:
    assert why in assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")


@pytest.mark.parametrize(
    "restrictions",
    [
        {"scopes": "read_only"},
        {"scopes": [{"methods": ["GET"], "path_prefix": "/v1.0/customer"}]},
        {"scopes": [{"methods": ["GET"], "path_prefix": "/v1.0"}]},
    ],
    ids=["read_only", "GET /v1.0/customer", "GET /v1.0"],
)
async def test_a_read_key_reads_the_customer_but_not_the_secret(
    client: httpx.AsyncClient, tenant: Tenant, restrictions: dict[str, Any]
) -> None:
    reader = await key_with(client, tenant, **restrictions)
    refused(await client.get(SECRET, headers=reader), RESTRICTED)
    # Its neighbours stay readable: the customer and the delivery status.
    assert (await client.get(CUSTOMER, headers=reader)).status_code == 200
    assert (await client.get(DELIVERIES, headers=reader)).status_code == 200


@pytest.mark.parametrize(
    "restrictions",
    [{"scopes": "read_only"}, {"scopes": [{"methods": ["GET"], "path_prefix": "/v1.0/audit"}]}],
    ids=["read_only", "GET /v1.0/audit"],
)
async def test_a_read_key_does_not_read_the_audit_log(
    client: httpx.AsyncClient, tenant: Tenant, restrictions: dict[str, Any]
) -> None:
    reader = await key_with(client, tenant, **restrictions)
    refused(await client.get(AUDIT, headers=reader), RESTRICTED)
    assert (await client.get(AUDIT, headers=tenant.auth)).status_code == 200


async def test_a_scoped_key_does_not_replace_the_secret(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await secret_of(client, tenant)
    rotator = await key_with(
        client, tenant, scopes=[{"methods": ["POST"], "path_prefix": "/v1.0/customer"}]
    )
    refused(await client.post(SECRET, headers=rotator), RESTRICTED)
    assert await secret_of(client, tenant) == before


async def test_a_scoped_key_changes_the_profile_but_not_the_webhook(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    shown = await hooked(client, tenant)
    editor = await key_with(
        client, tenant, scopes=[{"methods": ["GET", "PUT"], "path_prefix": "/v1.0/customer"}]
    )
    for change in (
        {"webhook_uri": "https://attacker.example.net/x", "webhook_method": "PUT"},
        {"webhook_uri": HOOK, "webhook_method": "POST"},
        {},  # left out: the hook would be removed
    ):
        response = await client.put(CUSTOMER, json={"name": "acme", **change}, headers=editor)
        refused(response, RESTRICTED)
    assert (await client.get(CUSTOMER, headers=tenant.auth)).json() == shown
    # The webhook sent back as it is (the method in any case): only the profile changes.
    same = {"webhook_uri": HOOK, "webhook_method": "put"}
    renamed = await client.put(CUSTOMER, json={"name": "renamed", **same}, headers=editor)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["webhook_uri"]) == ("renamed", HOOK)
    assert renamed.json()["webhook_method"] == "PUT"


async def test_an_allowlisted_key_keeps_no_secret_and_moves_no_webhook(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """An IP allowlist counts as a restriction here: a secret read works from anywhere."""
    allowlisted = await key_with(client, tenant, allowed_networks=["127.0.0.0/8"])
    refused(await client.get(SECRET, headers=allowlisted), RESTRICTED)
    refused(await client.post(SECRET, headers=allowlisted), RESTRICTED)
    refused(await client.get(AUDIT, headers=allowlisted), RESTRICTED)
    moved = await client.put(CUSTOMER, json={"name": "a", "webhook_uri": HOOK}, headers=allowlisted)
    refused(moved, RESTRICTED)
    profile = await client.put(CUSTOMER, json={"name": "a"}, headers=allowlisted)
    assert profile.status_code == 200, profile.text
    assert (await client.get(DELIVERIES, headers=allowlisted)).status_code == 200


async def test_a_manager_may_not_point_the_webhook_at_itself(
    client: httpx.AsyncClient, services: Services, tenant: Tenant
) -> None:
    manager = await session_of(client, services, tenant, Permission.CUSTOMER_MANAGER)
    moved = await client.put(CUSTOMER, json={"name": "acme", "webhook_uri": HOOK}, headers=manager)
    refused(moved, "needs the customer admin permission")
    stored = await services.customers.get_customer(OPERATOR, tenant.customer.id)
    assert stored.webhook_uri == ""
    refused(await client.get(SECRET, headers=manager), "needs the customer admin permission")
    refused(await client.post(SECRET, headers=manager), "needs the customer admin permission")
    refused(await client.get(AUDIT, headers=manager), "needs the customer admin permission")
    # The profile, with the webhook as it is, and the delivery status stay the manager's.
    profile = await client.put(CUSTOMER, json={"name": "renamed"}, headers=manager)
    assert profile.status_code == 200, profile.text
    assert (await client.get(DELIVERIES, headers=manager)).status_code == 200
    # An existing hook is neither moved nor removed by the manager.
    shown = await hooked(client, tenant)
    removed = await client.put(CUSTOMER, json={"name": "acme"}, headers=manager)
    refused(removed, "needs the customer admin permission")
    kept = await client.put(
        CUSTOMER,
        json={"name": "acme", "webhook_uri": HOOK, "webhook_method": "PUT"},
        headers=manager,
    )
    assert kept.status_code == 200, kept.text
    assert (await client.get(CUSTOMER, headers=tenant.auth)).json()["webhook_uri"] == shown[
        "webhook_uri"
    ]


@pytest.mark.parametrize("credential", ["admin session", "unrestricted key"])
async def test_an_admin_with_an_unrestricted_credential_keeps_every_right(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, credential: str
) -> None:
    auth = (
        await session_of(client, services, tenant, Permission.CUSTOMER_ADMIN)
        if credential == "admin session"
        else tenant.auth
    )
    first = await client.get(SECRET, headers=auth)
    assert first.status_code == 200, first.text
    second = await client.post(SECRET, headers=auth)
    assert second.status_code == 200, second.text
    assert second.json()["secret"] != first.json()["secret"]
    assert (await client.get(AUDIT, headers=auth)).status_code == 200
    moved = await client.put(CUSTOMER, json={"name": "a", "webhook_uri": HOOK}, headers=auth)
    assert moved.status_code == 200, moved.text
    assert moved.json()["webhook_uri"] == HOOK
