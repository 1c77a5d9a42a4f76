"""POST /auth/login (contract sections 2 and 5)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from keyplane.store.tables import agents
from tests.conftest import TEST_JWT_SECRET
from tests.factories import Factory, bearer
from tests.integration.conftest import PASSWORD, Tenant, assert_error, without_request_id


async def test_login_returns_exactly_username_and_token(
    client: httpx.AsyncClient, clock: FrozenClock, tenant: Tenant
) -> None:
    response = await client.post(
        "/auth/login", json={"username": tenant.username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"username", "token"}
    assert body["username"] == tenant.username
    claims = jwt.decode(
        body["token"],
        TEST_JWT_SECRET,
        algorithms=["HS256"],
        audience="keyplane",
        issuer="keyplane",
        options={"verify_exp": False, "verify_iat": False},  # the frozen clock is not now
    )
    assert claims["sub"] == str(tenant.agent_id)
    assert claims["cid"] == tenant.id
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["exp"] - claims["iat"] == 7 * 86_400
    me = await client.get("/v1.0/customer", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.json()["id"] == tenant.id


async def test_login_accepts_json_without_content_type_and_with_form_type(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    raw = json.dumps({"username": tenant.username, "password": PASSWORD, "extra": [1, 2]})
    plain = await client.post("/auth/login", content=raw)
    assert plain.status_code == 200, plain.text
    form = await client.post(
        "/auth/login",
        content=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200, form.text


async def test_wrong_username_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, services: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str | None] = []
    real_verify = services.passwords.verify

    async def spy(password_hash: str | None, password: str) -> bool:
        verified.append(password_hash)
        return await real_verify(password_hash, password)

    monkeypatch.setattr(services.passwords, "verify", spy)
    wrong_user = await client.post(
        "/auth/login", json={"username": tenant.username + "x", "password": PASSWORD}
    )
    wrong_password = await client.post(
        "/auth/login", json={"username": tenant.username, "password": PASSWORD + "x"}
    )
    # 400, as VoIPBIN answers a failed login, in the envelope.
    assert_error(wrong_user, 400, "INVALID_ARGUMENT", "INVALID_CREDENTIALS")
    assert_error(wrong_password, 400, "INVALID_ARGUMENT", "INVALID_CREDENTIALS")
    assert "set-cookie" not in wrong_user.headers
    assert without_request_id(wrong_user) == without_request_id(wrong_password)
    assert wrong_user.headers.keys() == wrong_password.headers.keys()
    # Same work either way: a password hash is verified for the unknown user too.
    assert len(verified) == 2
    assert PASSWORD not in wrong_password.text


@pytest.mark.parametrize(
    "body",
    [
        {"username": "", "password": PASSWORD},
        {"password": PASSWORD},
        {"username": "nobody", "password": ""},
        {},
    ],
    ids=["empty-username", "missing-username", "empty-password", "empty-object"],
)
async def test_missing_credentials_in_login_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]
) -> None:
    response = await client.post("/auth/login", json=body)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_CREDENTIALS")


@pytest.mark.parametrize(
    "content",
    [
        b"username=a&password=b",
        b"",
        b"{",
        b"[]",
        b'["username", "password"]',
        b'"text"',
        b"42",
        b"null",
        b'{"username": 5, "password": "x"}',
        b'{"username": "a", "password": ["x"]}',
        b'{"username": {"a": 1}, "password": "x"}',
        b'{"username": "a", "password": true}',
        b"\xff\xfe",
    ],
)
async def test_login_body_not_a_json_object_is_invalid_json_body(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        "/auth/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY")


async def test_login_of_deleted_agent_is_refused(
    client: httpx.AsyncClient, clock: FrozenClock, services: Services, tenant: Tenant
) -> None:
    async with services.database.transaction() as repos:
        await repos.connection.execute(
            update(agents).where(agents.c.id == tenant.agent_id).values(tm_delete=clock.now())
        )
    response = await client.post(
        "/auth/login", json={"username": tenant.username, "password": PASSWORD}
    )
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_CREDENTIALS")


async def test_a_deleted_agents_username_stays_taken_and_is_not_echoed(
    services: Services, factory: Factory
) -> None:
    from keyplane.errors import AlreadyExists
    from tests.factories import OPERATOR

    customer = await factory.customer()
    username = "kept-" + "name"
    agent = await factory.agent(customer, username=username)
    await services.customers.delete_agent(OPERATOR, agent.id)
    with pytest.raises(AlreadyExists) as taken:
        await factory.agent(customer, username=username)
    assert taken.value.reason == "USERNAME_TAKEN"
    assert username not in taken.value.message
    assert "deleted agent keeps its username" in taken.value.message
