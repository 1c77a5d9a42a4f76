"""Logging out of the admin page ends the session itself, on SQLite and PostgreSQL.

Not only the cookie: the session's token is refused by the page, by the API and
by ``/auth/verify`` from then on, whoever still holds a copy of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.errors import InvalidCredentials
from keyplane.services.auth import Credential
from keyplane.services.container import Services
from tests.conftest import DATABASES
from tests.factories import Factory
from tests.integration.admin.conftest import (
    PASSWORD,
    logged_in,
    on_both_databases,
    session_id_of,
)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


async def still_works(client: httpx.AsyncClient, session: str) -> dict[str, int]:
    """What the page, the API and /auth/verify answer to the session token."""
    page = await client.get("/admin/settings", headers={"Cookie": f"keyplane_admin={session}"})
    bearer = {"Authorization": f"Bearer {session}"}
    api = await client.get("/v1.0/customer", headers=bearer)
    verify = await client.get("/auth/verify", headers=bearer)
    return {"page": page.status_code, "api": api.status_code, "verify": verify.status_code}


async def test_logout_ends_the_session_on_the_page_and_as_an_api_credential(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    page = await logged_in(client, factory)
    session = page.token
    assert await still_works(client, session) == {"page": 200, "api": 200, "verify": 200}
    response = await client.post("/admin/logout", data={"csrf": page.csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?done=logged_out"
    # The same token, presented again (kept by whoever copied the cookie): refused everywhere.
    assert await still_works(client, session) == {"page": 303, "api": 401, "verify": 401}
    refused = await client.get("/v1.0/customer", headers={"Authorization": f"Bearer {session}"})
    assert refused.json()["error"]["reason"] == "INVALID_CREDENTIALS"


async def test_logout_ends_only_that_session(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    page = await logged_in(client, factory)
    other = await client.post("/auth/login", json={"username": page.username, "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {other.json()['token']}"}
    assert (await client.get("/v1.0/customer", headers=bearer)).status_code == 200
    await client.post("/admin/logout", data={"csrf": page.csrf})
    assert await still_works(client, page.token) == {"page": 303, "api": 401, "verify": 401}
    assert (await client.get("/v1.0/customer", headers=bearer)).status_code == 200


async def test_a_second_logout_with_the_ended_session_changes_nothing(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    page = await logged_in(client, factory)
    await client.post("/admin/logout", data={"csrf": page.csrf})
    again = await client.post(
        "/admin/logout",
        data={"csrf": page.csrf},
        headers={"Cookie": f"keyplane_admin={page.token}"},
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/admin/login"  # no session: the login form
    async with services.database.reader() as repos:
        ended = await repos.audit.page(
            page.customer_id,
            types=frozenset({"session_ended"}),
            since=None,
            until=None,
            before=None,
            limit=10,
        )
    assert len(ended) == 1


async def test_ending_a_session_twice_records_it_once(services: Services, factory: Factory) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    _, token = await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    identity, _ = await services.auth.authenticate(Credential("session", token, "header"))
    await services.sessions.end(identity, token)
    await services.sessions.end(identity, token)  # another tab, another replica
    session_id = session_id_of(token)
    async with services.database.reader() as repos:
        assert await repos.revocations.session_revoked(session_id)
        logged = [row for row in await repos.revocations.after(0) if row.kind == "session"]
        ended = await repos.audit.page(
            customer.id,
            types=frozenset({"session_ended"}),
            since=None,
            until=None,
            before=None,
            limit=10,
        )
    assert [(row.subject_id, row.token_hash) for row in logged] == [(session_id, None)]
    assert [(e.actor_type, e.actor_id, e.subject_id) for e in ended] == [
        ("agent", agent.id, agent.id)
    ]
    with pytest.raises(InvalidCredentials):
        await services.auth.authenticate_session(token)


async def test_an_ended_session_is_forgotten_a_day_after_its_token_expires(
    services: Services, factory: Factory, clock: FrozenClock
) -> None:
    """The ended session's row is kept while the token could still be presented; the token
    is refused all along, by its row and then by its own expiry."""
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    _, token = await services.auth.login(agent.username, PASSWORD, client="127.0.0.1")
    identity, _ = await services.auth.authenticate(Credential("session", token, "header"))
    await services.sessions.end(identity, token)
    session_id = session_id_of(token)

    async def kept() -> bool:
        async with services.database.reader() as repos:
            return await repos.revocations.session_revoked(session_id)

    expires = datetime.fromtimestamp(
        jwt.decode(token, options={"verify_signature": False})["exp"], UTC
    )
    clock.set(expires - timedelta(seconds=1))
    with pytest.raises(InvalidCredentials):
        await services.auth.authenticate_session(token)  # its row refuses it
    assert await services.session_retention.prune() == 0
    clock.set(expires + timedelta(days=1))
    assert await services.session_retention.prune() == 0  # a day of margin for clocks
    assert await kept()
    clock.advance(0.001)
    assert await services.session_retention.prune() == 1
    assert not await kept()
    with pytest.raises(InvalidCredentials):
        await services.auth.authenticate_session(token)  # its own expiry refuses it
