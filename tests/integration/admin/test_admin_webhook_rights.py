"""The page's webhook settings refuse what the API refuses: a customer manager sees the hook
and its deliveries but cannot move it, since the hook receives every key's name and id."""

from __future__ import annotations

import httpx

from keyplane.domain.permissions import Permission
from keyplane.services.container import Services
from tests.factories import OPERATOR, Factory
from tests.integration.admin.conftest import agent_on_page

HOOK = "https://hooks.example.com/keyplane"


async def test_a_manager_may_not_move_the_webhook_from_the_page(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    manager = await agent_on_page(client, factory, Permission.CUSTOMER_MANAGER)
    page = await client.get("/admin/settings")
    assert page.status_code == 200
    assert 'name="webhook_uri"' not in page.text  # nothing offered that would be refused
    assert "needs the customer admin permission" in page.text
    moved = await client.post(
        "/admin/settings",
        data={"csrf": manager.csrf, "webhook_uri": HOOK, "webhook_method": "POST"},
    )
    assert moved.status_code == 403
    assert "Changing the webhook needs the customer admin permission" in moved.text
    customer = await services.customers.get_customer(OPERATOR, manager.customer.id)
    assert customer.webhook_uri == ""


async def test_an_admin_moves_the_webhook_from_the_page(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    admin = await agent_on_page(client, factory, Permission.CUSTOMER_ADMIN)
    assert 'name="webhook_uri"' in (await client.get("/admin/settings")).text
    moved = await client.post(
        "/admin/settings",
        data={"csrf": admin.csrf, "webhook_uri": HOOK, "webhook_method": "POST"},
    )
    assert moved.status_code == 303
    customer = await services.customers.get_customer(OPERATOR, admin.customer.id)
    assert customer.webhook_uri == HOOK
