"""What the admin page says after a change, and on a refusal: once, and plainly.

On SQLite and PostgreSQL, like the changes it reports.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from keyplane.domain.permissions import Permission
from tests.conftest import DATABASES
from tests.factories import Factory
from tests.integration.admin.conftest import Admin, agent_on_page, on_both_databases

DELETED = "The key was deleted."


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


async def test_a_notice_is_shown_once_then_gone(
    client: httpx.AsyncClient, admin: Admin, factory: Factory
) -> None:
    key, _ = await factory.accesskey(admin.customer, name="old")
    deleted = await client.post(
        f"/admin/keys/{key.id}/delete", data={"csrf": admin.csrf, "confirmed": "yes"}
    )
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/keys"  # nothing to replay in the address
    shown = await client.get(deleted.headers["location"])
    assert DELETED in shown.text
    # Reloaded, filtered, or back after another change: the old news is not repeated.
    assert DELETED not in (await client.get("/admin/keys")).text
    assert DELETED not in (await client.get("/admin/keys?name=x")).text
    other, _ = await factory.accesskey(admin.customer, name="other")
    disabled = await client.post(
        f"/admin/keys/{other.id}/disable", data={"csrf": admin.csrf, "confirmed": "yes"}
    )
    page = await client.get(disabled.headers["location"])
    assert "The key was disabled" in page.text
    assert DELETED not in page.text


async def test_a_notice_in_the_address_is_not_shown(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    """A link cannot make the page claim a change that did not happen."""
    page = await client.get("/admin/keys?done=deleted")
    assert page.status_code == 200
    assert DELETED not in page.text


async def test_the_error_page_names_a_reason_equal_to_its_status_once(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await agent_on_page(client, factory, Permission.CUSTOMER_AGENT)
    refused = await client.get("/admin/keys")
    assert refused.status_code == 403
    assert refused.text.count("PERMISSION_DENIED") == 1
    assert "PERMISSION_DENIED · PERMISSION_DENIED" not in refused.text


async def test_the_error_page_shows_a_distinct_reason_beside_its_status(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    refused = await client.post("/admin/keys", data={"csrf": "forged", "name": "x"})
    assert refused.status_code == 403
    assert "PERMISSION_DENIED · CSRF_TOKEN_INVALID" in refused.text
