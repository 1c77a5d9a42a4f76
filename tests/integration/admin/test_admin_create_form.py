"""The create form's restrictions: scopes, an allowlist and the expiry, as the API takes them.

On SQLite and PostgreSQL: the restrictions are stored and read back.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from keyplane.domain.records import Accesskey
from keyplane.domain.scopes import READ_ONLY_SCOPES
from keyplane.services.container import Services
from tests.conftest import DATABASES
from tests.factories import OPERATOR
from tests.integration.admin.conftest import Admin, on_both_databases


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


async def create(client: httpx.AsyncClient, admin: Admin, **fields: str) -> httpx.Response:
    return await client.post(
        "/admin/keys", data={"csrf": admin.csrf, "name": "restricted", "expiry": "30", **fields}
    )


async def only_key(services: Services, admin: Admin) -> Accesskey:
    found = await services.accesskeys.list_page(
        OPERATOR, admin.customer.id, page_size=10, cursor=None
    )
    assert len(found.items) == 1
    return found.items[0]


async def test_the_create_form_is_folded_away_above_the_list(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    page = (await client.get("/admin/keys")).text
    assert '<details class="card create-box" id="create">' in page  # closed
    assert page.index('id="create"') < page.index('id="list-title"')


async def test_read_only_with_an_allowlist_and_a_custom_expiry(
    client: httpx.AsyncClient, services: Services, admin: Admin
) -> None:
    posted = await create(
        client,
        admin,
        expiry="custom",
        custom_days="7",
        access="read_only",
        allowed_networks="203.0.113.0/24, 2001:db8::/32",
    )
    assert posted.status_code == 303, posted.text
    key = await only_key(services, admin)
    assert key.scopes == READ_ONLY_SCOPES
    assert key.allowed_networks == (
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert (key.tm_expire - key.tm_create).days == 7


async def test_rules_of_methods_and_path_prefixes(
    client: httpx.AsyncClient, services: Services, admin: Admin
) -> None:
    posted = await create(
        client, admin, access="rules", scope_rules="GET,POST /v1.0/calls\r\nget /v1.0/agents\r\n"
    )
    assert posted.status_code == 303, posted.text
    key = await only_key(services, admin)
    assert key.scopes is not None
    rules = [(sorted(rule.methods), rule.path_prefix) for rule in key.scopes]
    assert rules == [(["GET", "POST"], "/v1.0/calls"), (["GET"], "/v1.0/agents")]
    assert key.allowed_networks is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"access": "rules", "scope_rules": ""}, "Give at least one rule"),
        ({"access": "rules", "scope_rules": "GET /v1.0/../calls"}, "Access: "),
        ({"access": "rules", "scope_rules": "FETCH /v1.0/calls"}, "Access: "),
        ({"allowed_networks": "203.0.113.7/24"}, "Allowed networks: "),
        ({"expiry": "custom", "custom_days": "0"}, "at least one day"),
    ],
)
async def test_a_refused_restriction_is_shown_on_the_form_with_what_was_entered(
    client: httpx.AsyncClient,
    services: Services,
    admin: Admin,
    fields: dict[str, str],
    message: str,
) -> None:
    refused = await create(client, admin, detail="kept", **fields)
    assert refused.status_code == 400
    assert message in refused.text
    assert '<details class="card create-box" id="create" open>' in refused.text
    assert 'id="create-problem"' in refused.text
    assert 'value="restricted"' in refused.text  # the name, entered again
    for value in fields.values():
        assert value.replace("'", "&#39;") in refused.text
    found = await services.accesskeys.list_page(
        OPERATOR, admin.customer.id, page_size=10, cursor=None
    )
    assert found.items == []
