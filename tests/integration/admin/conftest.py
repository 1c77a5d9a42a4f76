"""The /admin page in process (httpx over ASGI): a logged-in browser, as cookies and forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keyplane.domain.permissions import Permission
from keyplane.domain.records import Customer
from tests.factories import Factory

PASSWORD = "correct horse " + "battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the page calls the services, whose SQL is tested on both databases."""
    return f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def log_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token of the keys page."""
    form = await client.get("/admin/login")
    response = await client.post(
        "/admin/login",
        data={"csrf": csrf_of(form), "username": username, "password": password},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin"
    return csrf_of(await client.get("/admin/keys"))


@dataclass
class Admin:
    customer: Customer
    username: str
    csrf: str


async def agent_on_page(
    client: httpx.AsyncClient, factory: Factory, permission: Permission
) -> Admin:
    customer = await factory.customer()
    agent = await factory.agent(customer, permission=int(permission), password=PASSWORD)
    form = await client.get("/admin/login")
    response = await client.post(
        "/admin/login",
        data={"csrf": csrf_of(form), "username": agent.username, "password": PASSWORD},
    )
    assert response.status_code == 303, response.text
    # The log out form is on every page, with the session's token.
    return Admin(customer, agent.username, csrf_of(await client.get("/admin/settings")))


@pytest.fixture
async def admin(client: httpx.AsyncClient, factory: Factory) -> Admin:
    return await agent_on_page(client, factory, Permission.CUSTOMER_ADMIN)
