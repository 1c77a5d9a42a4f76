"""The /admin page in process (httpx over ASGI): a logged-in browser, as cookies and forms."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from keyplane.domain.permissions import Permission
from keyplane.domain.records import Customer
from tests.factories import Factory
from tests.servers import PostgresServer

PASSWORD = "correct horse " + "battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the page calls the services, whose SQL is tested on both databases."""
    return f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"


def on_both_databases(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For a module's own ``database_url`` fixture (params=DATABASES), where the page's
    own reads and writes are the subject: sessions and their logout."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url()


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


def set_cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";")[0].partition("=")[2]
    raise AssertionError(f"no {name} cookie set: {response.headers}")


async def genuine_form(client: httpx.AsyncClient) -> tuple[str, str]:
    """A login form's cookie nonce and field token, as the server issues them."""
    form = await client.get("/admin/login")
    assert form.status_code == 200
    return set_cookie_value(form, "keyplane_admin_login"), csrf_of(form)


async def post_login(
    client: httpx.AsyncClient,
    username: str,
    *,
    nonce: str,
    token: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The login form as a browser holding exactly this cookie would post it."""
    return await client.post(
        "/admin/login",
        data={"csrf": token, "username": username, "password": PASSWORD},
        headers={"Cookie": f"keyplane_admin_login={nonce}", **(headers or {})},
    )


def session_id_of(token: str) -> uuid.UUID:
    """The session's id (``jti``) of a session token."""
    return uuid.UUID(hex=jwt.decode(token, options={"verify_signature": False})["jti"])


@dataclass
class PageSession:
    token: str  # the keyplane_admin cookie
    csrf: str
    customer_id: uuid.UUID
    username: str


async def logged_in(client: httpx.AsyncClient, factory: Factory) -> PageSession:
    """An agent logged in to the page."""
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    nonce, token = await genuine_form(client)
    response = await post_login(client, agent.username, nonce=nonce, token=token)
    assert response.status_code == 303, response.text
    session = set_cookie_value(response, "keyplane_admin")
    csrf = csrf_of(await client.get("/admin/settings"))
    return PageSession(session, csrf, customer.id, agent.username)
