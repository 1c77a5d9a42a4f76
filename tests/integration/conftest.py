"""Helpers for the HTTP contract tests (docs: /work/shared/spec/accesskey-api.md)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import jwt
import pytest

from keyplane.domain.permissions import Permission
from keyplane.domain.records import Agent, Customer
from keyplane.domain.timefmt import parse_timestamp
from keyplane.services.container import Services
from keyplane.services.customers import new_agent
from keyplane.store.engine import Database, create_engine
from tests.conftest import TEST_JWT_SECRET
from tests.factories import ACCESSKEY_FIELDS, Factory
from tests.servers import PostgresServer

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
TOKEN = re.compile(r"^vb_[A-Za-z0-9]{32}$")
ACCESSKEY_WITH_TOKEN_FIELDS = ACCESSKEY_FIELDS | {"token"}
CONTRACT_STATUSES = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}
KEYS = "/v1.0/accesskeys"
PASSWORD = "correct horse battery staple"


def key_url(key_id: object) -> str:
    return f"{KEYS}/{key_id}"


def cookie(**values: str) -> dict[str, str]:
    """A raw Cookie header (per-request ``cookies=`` is deprecated in httpx)."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in values.items())}


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: str) -> datetime:
    return parse_timestamp(text)


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers.get("referrer-policy") == "no-referrer", response.headers
    assert response.headers.get("x-request-id"), response.headers


def assert_error(response: httpx.Response, http_status: int, status: str, reason: str) -> str:
    """The contract's envelope, exactly; returns the message."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "reason", "message", "request_id"}, body
    assert error["status"] == status, body
    assert error["reason"] == reason, body
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert_security_headers(response)
    return str(error["message"])


def without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    error = dict(body["error"])
    error.pop("request_id")
    return error


def assert_accesskey_shape(body: dict[str, Any], *, with_token: bool = False) -> None:
    assert set(body) == (ACCESSKEY_WITH_TOKEN_FIELDS if with_token else ACCESSKEY_FIELDS), body
    uuid.UUID(body["id"])
    uuid.UUID(body["customer_id"])
    assert isinstance(body["name"], str)
    assert isinstance(body["detail"], str)
    for field in ("tm_expire", "tm_create", "tm_update", "tm_delete"):
        value = body[field]
        assert value is None or TIMESTAMP.fullmatch(value), (field, value)
    assert body["tm_expire"] is not None
    assert body["tm_create"] is not None
    if with_token:
        assert TOKEN.fullmatch(body["token"])
        assert body["token_prefix"] == body["token"][:11]


def make_jwt(
    agent_id: object,
    customer_id: object,
    now: datetime,
    *,
    secret: str = TEST_JWT_SECRET,
    algorithm: str = "HS256",
    lifetime: timedelta = timedelta(days=7),
    drop: tuple[str, ...] = (),
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A session JWT built with PyJWT directly, for positive and negative tests."""
    claims: dict[str, Any] = {
        "sub": str(agent_id),
        "cid": str(customer_id),
        "iss": "keyplane",
        "aud": "keyplane",
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    for name in drop:
        claims.pop(name)
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


class Tenant:
    """A customer with an admin agent (permission 32) and a working access key."""

    def __init__(self, customer: Customer, username: str, agent_id: uuid.UUID, key: str) -> None:
        self.customer = customer
        self.username = username
        self.agent_id = agent_id
        self.key = key

    @property
    def id(self) -> str:
        return str(self.customer.id)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


_PASSWORD_HASHES: dict[str, str] = {}


async def quick_agent(
    services: Services,
    customer: Customer,
    *,
    permission: int = int(Permission.CUSTOMER_ADMIN),
    password: str = PASSWORD,
) -> Agent:
    """An agent like ``factory.agent`` makes, reusing one argon2 hash to keep tests fast."""
    if password not in _PASSWORD_HASHES:
        _PASSWORD_HASHES[password] = await services.passwords.hash(password)
    agent = new_agent(
        customer.id,
        f"agent-{uuid.uuid4().hex[:12]}",
        _PASSWORD_HASHES[password],
        permission,
        "",
        "",
        services.clock.now(),
    )
    async with services.database.transaction() as repos:
        await repos.agents.insert(agent)
    return agent


async def _tenant(services: Services, factory: Factory) -> Tenant:
    customer = await factory.customer()
    agent = await quick_agent(services, customer)
    key = await factory.identity_token(customer)
    return Tenant(customer, agent.username, agent.id, key)


@pytest.fixture
async def tenant(services: Services, factory: Factory) -> Tenant:
    return await _tenant(services, factory)


@pytest.fixture
async def other(services: Services, factory: Factory) -> Tenant:
    return await _tenant(services, factory)


async def create_key(
    client: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": "k", "detail": "d", "expire": 86_400}
    payload.update(body)
    response = await client.post(KEYS, json=payload, headers=auth)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
async def one_connection_database(postgres: PostgresServer) -> AsyncIterator[Database]:
    """A ``Database`` on the shared PostgreSQL whose pool holds one connection."""
    database = Database(create_engine(postgres.url(), pool_size=1), timeout=5.0)
    try:
        yield database
    finally:
        await database.dispose()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'keyplane.db'}"


async def hold_address_slots(
    services: Services, client: str, count: int, release: anyio.Event, tg: anyio.abc.TaskGroup
) -> None:
    """Take ``count`` slots of the address's budget and keep them pending until ``release``."""
    taken = 0

    async def hold() -> None:
        nonlocal taken
        async with services.ratelimits.auth_attempt(client):
            taken += 1
            await release.wait()

    for _ in range(count):
        tg.start_soon(hold)
    await anyio.wait_all_tasks_blocked()
    assert taken == count
