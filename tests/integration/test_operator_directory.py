"""The operator's views of customers and agents (the command line's lists), on both databases."""

from __future__ import annotations

import uuid

import pytest

from keyplane.domain.permissions import Identity, Permission
from keyplane.errors import InvalidArgument, NotFound, PermissionDenied
from keyplane.services.container import Services
from keyplane.services.diagnosis import diagnose_accesskey
from tests.factories import OPERATOR, Factory, fake_token


async def test_customers_page_each_once_and_skip_deleted(
    services: Services, factory: Factory
) -> None:
    made = [await factory.customer(f"c{index}") for index in range(5)]
    await services.customers.delete_customer(OPERATOR, made[1].id)
    seen, last = [], None
    while True:
        page = await services.customers.list_customers(OPERATOR, after=last, limit=2)
        seen.extend(customer.id for customer in page)
        if len(page) < 2:
            break
        last = page[-1]
    # The test clock is frozen: every customer has one tm_create, and the id orders them.
    assert len(seen) == len(set(seen))
    assert set(seen) == {made[0].id, made[2].id, made[3].id, made[4].id}


async def test_agents_of_a_customer(services: Services, factory: Factory) -> None:
    customer, other = await factory.customer(), await factory.customer()
    ann = await factory.agent(customer, username="ann-" + uuid.uuid4().hex[:6])
    bob = await factory.agent(customer, username="bob-" + uuid.uuid4().hex[:6])
    await factory.agent(other)
    await services.customers.delete_agent(OPERATOR, bob.id)
    agents = await services.customers.list_agents(OPERATOR, customer.id)
    assert [agent.id for agent in agents] == [ann.id]
    assert (await services.customers.get_agent(OPERATOR, ann.id)).username == ann.username
    with pytest.raises(NotFound):
        await services.customers.get_agent(OPERATOR, bob.id)
    with pytest.raises(NotFound):
        await services.customers.list_agents(OPERATOR, uuid.uuid4())


async def test_a_new_password_replaces_the_old(services: Services, factory: Factory) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password="the old password")
    changed = await services.customers.set_agent_password(OPERATOR, agent.id, "the new password")
    assert changed.tm_update is not None
    logged_in, _ = await services.auth.login(agent.username, "the new password")
    assert logged_in.id == agent.id
    with pytest.raises(InvalidArgument):
        await services.customers.set_agent_password(OPERATOR, agent.id, "")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("x", "PASSWORD_TOO_SHORT"),
        ("eleven char", "PASSWORD_TOO_SHORT"),
        ("\uff41" * 11, "PASSWORD_TOO_SHORT"),  # eleven code points after NFKC
        ("qwertyuiop123", "PASSWORD_TOO_COMMON"),
        ("x" * 257, "PASSWORD_TOO_LONG"),
    ],
)
async def test_a_new_password_meets_the_policy(
    services: Services, factory: Factory, password: str, reason: str
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer)
    with pytest.raises(InvalidArgument) as changing:
        await services.customers.set_agent_password(OPERATOR, agent.id, password)
    assert changing.value.reason == reason
    with pytest.raises(InvalidArgument) as creating:
        await services.customers.create_agent(
            OPERATOR, customer.id, username="weak", password=password, permission=32
        )
    assert creating.value.reason == reason
    assert [a.username for a in await services.customers.list_agents(OPERATOR, customer.id)] == [
        agent.username
    ]


async def test_a_password_of_twelve_characters_or_more_is_taken(
    services: Services, factory: Factory
) -> None:
    customer = await factory.customer()
    for password in ("twelve chars", "x" * 256, "\u00e9t\u00e9 \u00e0 la plage"):
        agent = await services.customers.create_agent(
            OPERATOR, customer.id, username=f"u{len(password)}", password=password, permission=32
        )
        logged_in, _ = await services.auth.login(agent.username, password)
        assert logged_in.id == agent.id


async def test_only_a_project_super_admin(services: Services, factory: Factory) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer)
    admin = Identity("agent", agent.id, customer.id, int(Permission.CUSTOMER_ADMIN))
    with pytest.raises(PermissionDenied):
        await services.customers.list_customers(admin, after=None, limit=10)
    with pytest.raises(PermissionDenied):
        await services.customers.list_agents(admin, customer.id)
    with pytest.raises(PermissionDenied):
        await services.customers.get_agent(admin, agent.id)
    with pytest.raises(PermissionDenied):
        await services.customers.set_agent_password(admin, agent.id, "x")


async def test_diagnosis_names_the_rule(services: Services, factory: Factory) -> None:
    customer = await factory.customer()
    _, live_token = await factory.accesskey(customer)
    gone, gone_token = await factory.accesskey(customer)
    off, off_token = await factory.accesskey(customer)
    await services.accesskeys.delete(OPERATOR, gone.id)
    await services.accesskeys.disable(OPERATOR, off.id)
    assert (await diagnose_accesskey(services, live_token)).valid
    assert (await diagnose_accesskey(services, gone_token)).why.startswith("deleted at ")
    assert (await diagnose_accesskey(services, off_token)).why.startswith("disabled at ")
    assert (await diagnose_accesskey(services, fake_token("Q"))).why.startswith("unknown")
    assert (await diagnose_accesskey(services, "vb_" + "short")).why.startswith("malformed")
