"""A customer's email is checked wherever it is set: PUT /v1.0/customer, the
command line's customer create and update, and the admin page (all one service call)."""

from __future__ import annotations

import httpx
import pytest

from keyplane.errors import InvalidArgument
from keyplane.services.container import Services
from tests.factories import OPERATOR, Factory, bearer
from tests.integration.conftest import assert_error


async def test_put_refuses_an_email_that_cannot_be_an_address(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    auth = bearer(await factory.identity_token(customer))
    for bad in ("ops", "ops@localhost", "ops @example.com", "ops@@example.com", "x\x07@y.com"):
        refused = await client.put("/v1.0/customer", json={"name": "n", "email": bad}, headers=auth)
        message = assert_error(refused, 400, "INVALID_ARGUMENT", "INVALID_EMAIL")
        assert message.startswith("'email' ")
    stored = await services.customers.get_customer(OPERATOR, customer.id)
    assert stored.email == "ops@example.com"
    for good in ("billing@example.org", ""):
        taken = await client.put("/v1.0/customer", json={"name": "n", "email": good}, headers=auth)
        assert taken.status_code == 200, taken.text
        assert (await services.customers.get_customer(OPERATOR, customer.id)).email == good


async def test_create_refuses_it_too(services: Services) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await services.customers.create_customer(OPERATOR, name="Acme", email="acme.example.com")
    assert refused.value.reason == "INVALID_EMAIL"
    assert await services.customers.list_customers(OPERATOR, after=None, limit=10) == []
    made = await services.customers.create_customer(OPERATOR, name="Acme", email="")
    assert made.email == ""


async def test_an_email_stored_before_the_check_can_be_sent_back(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    async with services.database.transaction() as repos:
        await repos.customers.update_profile(
            customer.id,
            now=customer.tm_create,
            name=customer.name,
            detail="",
            email="legacy",
            phone_number="",
            address="",
        )
    auth = bearer(await factory.identity_token(customer))
    same = await client.put(
        "/v1.0/customer", json={"name": "renamed", "email": "legacy"}, headers=auth
    )
    assert same.status_code == 200, same.text
    changed = await client.put(
        "/v1.0/customer", json={"name": "renamed", "email": "legacy2"}, headers=auth
    )
    assert_error(changed, 400, "INVALID_ARGUMENT", "INVALID_EMAIL")
