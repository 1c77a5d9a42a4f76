"""Finding a key by its token prefix (how a leaked token is matched), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from keyplane.domain.permissions import Permission
from keyplane.errors import InvalidArgument
from keyplane.services.container import Services
from tests.conftest import DATABASES
from tests.factories import OPERATOR, Factory
from tests.integration.admin.conftest import Admin, agent_on_page, on_both_databases


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


async def test_a_leaked_tokens_prefix_finds_its_key_only(
    client: httpx.AsyncClient, admin: Admin, factory: Factory
) -> None:
    leaked, token = await factory.accesskey(admin.customer, name="leaked-one")
    await factory.accesskey(admin.customer, name="innocent")
    stranger = await factory.customer()
    await factory.accesskey(stranger, name="someone-elses")
    found = await client.get("/admin/keys", params={"prefix": token[:11]})
    assert found.status_code == 200
    assert 'data-key-name="leaked-one"' in found.text
    assert 'data-key-name="innocent"' not in found.text
    assert token[11:] not in found.text
    assert leaked.token_prefix == token[:11]


async def test_another_customers_key_is_not_found_by_its_prefix(
    client: httpx.AsyncClient, admin: Admin, factory: Factory
) -> None:
    stranger = await factory.customer()
    _, token = await factory.accesskey(stranger, name="someone-elses")
    found = await client.get("/admin/keys", params={"prefix": token[:11]})
    assert found.status_code == 200
    assert "someone-elses" not in found.text
    assert "No live key" in found.text


async def test_a_deleted_key_is_not_found(
    client: httpx.AsyncClient, services: Services, admin: Admin, factory: Factory
) -> None:
    key, token = await factory.accesskey(admin.customer, name="gone")
    await services.accesskeys.delete(OPERATOR, key.id)
    found = await client.get("/admin/keys", params={"prefix": token[:11]})
    assert 'data-key-name="gone"' not in found.text


@pytest.mark.parametrize("prefix", ["vb_abc", "xx_12345678", "vb_1234567!", "vb_" + "A" * 9])
async def test_what_is_not_a_prefix_is_explained(
    client: httpx.AsyncClient, admin: Admin, prefix: str
) -> None:
    refused = await client.get("/admin/keys", params={"prefix": prefix})
    assert refused.status_code == 400
    assert 'id="prefix-problem"' in refused.text
    assert "vb_ and the 8 letters or digits" in refused.text


async def test_only_a_customer_admin_may_search(
    services: Services, client: httpx.AsyncClient, factory: Factory
) -> None:
    clerk = await agent_on_page(client, factory, Permission.CUSTOMER_AGENT)
    refused = await client.get("/admin/keys", params={"prefix": "vb_" + "A" * 8})
    assert refused.status_code == 403
    with pytest.raises(InvalidArgument):
        await services.accesskeys.find_by_prefix(OPERATOR, clerk.customer.id, "vb_" + "A" * 7)
