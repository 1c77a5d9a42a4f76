"""A new key's token on the admin page: POST/redirect/GET, shown once, never stored.

On SQLite and PostgreSQL: the list reads the key back to show it with its token.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Permission
from keyplane.services.container import Services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from tests.conftest import DATABASES
from tests.factories import OPERATOR, Factory
from tests.integration.admin.conftest import PASSWORD, Admin, log_in, on_both_databases

TOKEN = re.compile("vb" + "_" + r"[A-Za-z0-9]{32}")
FLASH = "keyplane_admin_token"


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


async def key_count(services: Services, admin: Admin) -> int:
    found = await services.accesskeys.list_page(
        OPERATOR, admin.customer.id, page_size=100, cursor=None
    )
    return len(found.items)


def flash_cookie(response: httpx.Response) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{FLASH}=")]
    assert len(found) == 1, response.headers
    return found[0]


async def create(client: httpx.AsyncClient, admin: Admin, name: str) -> httpx.Response:
    return await client.post(
        "/admin/keys", data={"csrf": admin.csrf, "name": name, "detail": "", "expiry": "30"}
    )


async def test_create_redirects_and_a_reload_creates_nothing_more(
    client: httpx.AsyncClient, services: Services, admin: Admin
) -> None:
    posted = await create(client, admin, "reporting")
    assert posted.status_code == 303
    assert posted.headers["location"] == "/admin/keys"
    assert not TOKEN.search(posted.text)
    cookie = flash_cookie(posted)
    for flag in ("HttpOnly", "SameSite=strict", "Path=/admin/keys", "Max-Age=60"):
        assert flag.lower() in cookie.lower(), cookie
    assert not TOKEN.search(cookie)  # sealed, not the token in the clear
    shown = await client.get(posted.headers["location"])
    tokens = TOKEN.findall(shown.text)
    assert len(tokens) == 1
    assert "will not be shown again" in shown.text
    assert f"{FLASH}=" in flash_cookie(shown)
    assert "max-age=0" in flash_cookie(shown).lower()
    # Reloading the page (the GET the browser would repeat) neither shows it nor creates a key.
    for _ in range(2):
        again = await client.get("/admin/keys")
        assert again.status_code == 200
        assert tokens[0] not in again.text
        assert tokens[0][:11] in again.text
    assert await key_count(services, admin) == 1
    # Only the hash is kept: the token is nowhere in the database's record.
    key = (
        await services.accesskeys.list_page(OPERATOR, admin.customer.id, page_size=10, cursor=None)
    ).items[0]
    assert tokens[0] not in repr(key)


async def test_rotation_shows_the_new_token_once_after_a_redirect(
    client: httpx.AsyncClient, services: Services, admin: Admin, factory: Factory
) -> None:
    key, old = await factory.accesskey(admin.customer, name="billing")
    rotated = await client.post(
        f"/admin/keys/{key.id}/rotate",
        data={"csrf": admin.csrf, "confirmed": "yes", "grace": "3600"},
    )
    assert rotated.status_code == 303
    shown = await client.get(rotated.headers["location"])
    tokens = TOKEN.findall(shown.text)
    assert len(tokens) == 1
    assert tokens[0] != old
    assert "Key rotated" in shown.text
    assert tokens[0] not in (await client.get("/admin/keys")).text
    assert await key_count(services, admin) == 2  # the old one, rotating, and its replacement


async def test_the_sealed_token_opens_only_for_its_session_and_briefly(
    client: httpx.AsyncClient,
    services: Services,
    admin: Admin,
    factory: Factory,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    posted = await create(client, admin, "reporting")
    sealed = flash_cookie(posted).split(";")[0].split("=", 1)[1]
    # Another agent of the same customer, presenting the same cookie: nothing shown.
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    other = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    async with other:
        colleague = await factory.agent(
            admin.customer, permission=int(Permission.CUSTOMER_ADMIN), password=PASSWORD
        )
        await log_in(other, colleague.username)
        page = await other.get("/admin/keys", headers={"Cookie": _with(other, sealed)})
        assert page.status_code == 200
        assert not TOKEN.search(page.text)
    # A changed byte: nothing shown.
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    client.cookies.set(FLASH, tampered, path="/admin/keys")
    assert not TOKEN.search((await client.get("/admin/keys")).text)
    # The right cookie, after its minute: nothing shown.
    client.cookies.set(FLASH, sealed, path="/admin/keys")
    clock.advance(61)
    assert not TOKEN.search((await client.get("/admin/keys")).text)
    assert await key_count(services, admin) == 1


def _with(client: httpx.AsyncClient, sealed: str) -> str:
    session = next(c.value for c in client.cookies.jar if c.name == "keyplane_admin")
    return f"keyplane_admin={session}; {FLASH}={sealed}"
