"""The tenant matrix: every endpoint x every caller x every target, from one table.

``expected`` is the one place that says what each cell must answer, following
the contract (section 1 "Permission check", section 5 "Rules"): the key's
customer is compared first (another customer's key is 404 for everyone), then
deletion (409 for the caller's own customer), then the permission (403). The
whole matrix runs once per database; setup is shared by all cells, and a cell
that would change its target (DELETE) gets a fresh target of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.domain.permissions import Permission
from keyplane.domain.records import Customer
from keyplane.services.container import Services
from keyplane.settings import Settings
from tests.conftest import make_settings
from tests.factories import OPERATOR, Factory, bearer, login
from tests.integration.conftest import KEYS, PASSWORD, key_url, quick_agent

ADMIN = int(Permission.CUSTOMER_ADMIN)
SUPER = int(Permission.PROJECT_SUPER_ADMIN)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Hundreds of refused credentials from one address are the point here, not a limit test.
    return make_settings(
        tmp_path,
        database_url=database_url,
        ratelimit_auth_failures_burst=1_000_000,
        ratelimit_auth_failures_per_minute=1_000_000,
    )


@dataclass(frozen=True)
class Caller:
    name: str
    customer: str | None  # "A" or "B"; None: no working credential
    permission: int
    request: dict[str, Any]
    dead: bool = False  # a credential that is refused (deleted or expired key)


@dataclass(frozen=True)
class Target:
    name: str
    customer: str | None  # None: an id that does not exist
    deleted: bool = False


TARGETS = (
    Target("A's key", "A"),
    Target("B's key", "B"),
    Target("A's deleted key", "A", deleted=True),
    Target("unknown id", None),
)
ENDPOINTS = (
    ("GET", "/v1.0/me"),
    ("GET", "/v1.0/customer"),
    ("POST", KEYS),
    ("GET", KEYS),
    ("GET", "item"),
    ("PUT", "item"),
    ("DELETE", "item"),
)


def can_manage(permission: int) -> bool:
    return bool(permission & (ADMIN | SUPER))


def expected(caller: Caller, method: str, path: str, target: Target | None) -> tuple[int, str]:
    """The contract's answer for one cell: (HTTP status, reason)."""
    if caller.customer is None and not caller.dead:
        return 401, "AUTHENTICATION_REQUIRED"
    if caller.dead:
        return 401, "INVALID_CREDENTIALS"
    if path in ("/v1.0/me", "/v1.0/customer"):
        return 200, ""
    if path == KEYS:
        return (200, "") if can_manage(caller.permission) else (403, "PERMISSION_DENIED")
    assert target is not None
    if target.customer != caller.customer:  # unknown, or another customer's: first
        return 404, "RESOURCE_NOT_FOUND"
    if target.deleted:
        return 409, "STATE_INVALID"
    return (200, "") if can_manage(caller.permission) else (403, "PERMISSION_DENIED")


def by_every_transport(name: str, customer: str, token: str, *, dead: bool = False) -> list[Caller]:
    return [
        Caller(f"{name} (Bearer)", customer, ADMIN, {"headers": bearer(token)}, dead),
        Caller(f"{name} (?accesskey=)", customer, ADMIN, {"params": {"accesskey": token}}, dead),
        Caller(
            f"{name} (cookie)", customer, ADMIN, {"headers": {"Cookie": f"accesskey={token}"}}, dead
        ),
    ]


class World:
    """Customers A and B, their callers, and the targets, shared by every cell."""

    def __init__(self, services: Services, factory: Factory, clock: FrozenClock) -> None:
        self.services = services
        self.factory = factory
        self.clock = clock
        self.customers: dict[str, Customer] = {}
        self.targets: dict[str, str] = {}

    async def build(self, client: httpx.AsyncClient) -> list[Caller]:
        a = self.customers["A"] = await self.factory.customer("A")
        b = self.customers["B"] = await self.factory.customer("B")
        expiring, expiring_token = await self.factory.accesskey(a, expire=86_400)
        deleted, deleted_token = await self.factory.accesskey(a)
        await self.services.accesskeys.delete(OPERATOR, deleted.id)
        sessions: list[Caller] = []
        for name, customer, permission in (
            ("anonymous", None, 0),
            ("agent of A", "A", int(Permission.CUSTOMER_AGENT)),
            ("manager of A", "A", int(Permission.CUSTOMER_MANAGER)),
            ("admin of A", "A", ADMIN),
            ("super admin of A", "A", SUPER),
            ("admin of B", "B", ADMIN),
        ):
            if customer is None:
                sessions.append(Caller(name, None, 0, {}))
                continue
            agent = await quick_agent(
                self.services, self.customers[customer], permission=permission
            )
            token = await login(client, agent.username, PASSWORD)
            sessions.append(Caller(name, customer, permission, {"headers": bearer(token)}))
        key_a = await self.factory.identity_token(a)
        key_b = await self.factory.identity_token(b)
        for name, customer in (("A's key", "A"), ("B's key", "B")):
            self.targets[name] = str((await self.factory.accesskey(self.customers[customer]))[0].id)
        self.targets["A's deleted key"] = str(deleted.id)
        self.targets["unknown id"] = str(uuid.uuid4())
        # The expiring key outlives its day: every other credential is good for longer.
        self.clock.advance(86_401)
        assert expiring.tm_expire < self.clock.now()
        return [
            *sessions,
            *by_every_transport("access key of A", "A", key_a),
            *by_every_transport("access key of B", "B", key_b),
            *by_every_transport("deleted key of A", "A", deleted_token, dead=True),
            *by_every_transport("expired key of A", "A", expiring_token, dead=True),
        ]

    async def target_id(self, method: str, target: Target) -> str:
        """A DELETE that may succeed gets a fresh key, so no cell changes another's target."""
        if method == "DELETE" and target.customer is not None and not target.deleted:
            key, _ = await self.factory.accesskey(self.customers[target.customer])
            return str(key.id)
        return self.targets[target.name]


async def _check_success(
    world: World, caller: Caller, method: str, path: str, body: dict[str, Any], key_id: str | None
) -> str | None:
    """A 200 must also have done the right thing, for the right customer."""
    assert caller.customer is not None
    own = str(world.customers[caller.customer].id)
    if path == "/v1.0/customer":
        return None if body["id"] == own else f"customer {body['id']}"
    if path == "/v1.0/me":
        return None if body["customer_id"] == own else f"me of {body['customer_id']}"
    if path == KEYS and method == "GET":
        customers = {item["customer_id"] for item in body["result"]}
        deleted = [item for item in body["result"] if item["tm_delete"] is not None]
        return None if customers <= {own} and not deleted else f"listed {customers}, {deleted}"
    if path == KEYS:
        return None if body["customer_id"] == own else f"created for {body['customer_id']}"
    if body["id"] != key_id or body["customer_id"] != own:
        return f"answered for {body['id']} of {body['customer_id']}"
    if method == "PUT" and body["name"] != "renamed":
        return "not renamed"
    if method == "DELETE" and body["tm_delete"] is None:
        return "not deleted"
    return None


async def test_tenant_matrix(
    client: httpx.AsyncClient, services: Services, factory: Factory, clock: FrozenClock
) -> None:
    world = World(services, factory, clock)
    callers = await world.build(client)
    wrong: list[str] = []
    cells = 0
    for caller in callers:
        for method, path in ENDPOINTS:
            for target in TARGETS if path == "item" else (None,):
                key_id = None if target is None else await world.target_id(method, target)
                url = key_url(key_id) if target is not None else path
                body = {"name": "renamed", "detail": "d", "expire": 86_400}
                response = await client.request(
                    method, url, json=body if method in ("POST", "PUT") else None, **caller.request
                )
                cells += 1
                status, reason = expected(caller, method, path, target)
                cell = f"{caller.name} {method} {path} {target.name if target else ''}"
                if response.status_code != status:
                    wrong.append(f"{cell}: {response.status_code}, expected {status}")
                elif status != 200:
                    got = response.json()["error"]["reason"]
                    if got != reason:
                        wrong.append(f"{cell}: reason {got}, expected {reason}")
                else:
                    problem = await _check_success(
                        world, caller, method, path, response.json(), key_id
                    )
                    if problem:
                        wrong.append(f"{cell}: {problem}")
    assert cells == len(callers) * (4 + 3 * len(TARGETS))
    assert not wrong, "\n".join(wrong)
    # Nothing a refused cell asked for happened: B's target and A's deleted key are as they were.
    async with services.database.reader() as repos:
        theirs = await repos.accesskeys.get(uuid.UUID(world.targets["B's key"]))
        gone = await repos.accesskeys.get(uuid.UUID(world.targets["A's deleted key"]))
    assert theirs is not None
    assert theirs.name == "renamed"  # by B's own admin and keys only
    assert theirs.tm_delete is None
    assert gone is not None
    assert gone.name == ""


def test_the_table_follows_the_contract() -> None:
    """Spot checks of ``expected`` itself, so the generator cannot drift unnoticed."""
    super_a = Caller("s", "A", SUPER, {})
    agent_a = Caller("g", "A", 16, {})
    key_b = Caller("k", "B", ADMIN, {})
    dead = Caller("d", "A", ADMIN, {}, dead=True)
    own, theirs, gone, unknown = TARGETS
    assert expected(super_a, "GET", "item", theirs) == (404, "RESOURCE_NOT_FOUND")
    assert expected(super_a, "DELETE", "item", own) == (200, "")
    assert expected(agent_a, "GET", "item", theirs) == (404, "RESOURCE_NOT_FOUND")
    assert expected(agent_a, "GET", "item", gone) == (409, "STATE_INVALID")
    assert expected(agent_a, "GET", "item", own) == (403, "PERMISSION_DENIED")
    assert expected(agent_a, "GET", "/v1.0/me", None) == (200, "")
    assert expected(key_b, "PUT", "item", gone) == (404, "RESOURCE_NOT_FOUND")
    assert expected(key_b, "PUT", "item", unknown) == (404, "RESOURCE_NOT_FOUND")
    assert expected(dead, "GET", "/v1.0/customer", None) == (401, "INVALID_CREDENTIALS")


# --- mass assignment never takes effect -----------------------------------------------------------

FORGED = {
    "id": "11111111-1111-4111-8111-111111111111",
    "token": "vb_" + "F" * 32,
    "token_prefix": "vb_FFFFFFFF",
    "token_hash": "0" * 64,
    "tm_expire": "2099-01-01T00:00:00.000000Z",
    "tm_create": "2000-01-01T00:00:00.000000Z",
    "tm_update": "2000-01-01T00:00:00.000000Z",
    "tm_delete": "2000-01-01T00:00:00.000000Z",
    "expire": 999_999_999,
    "permission": 65535,
}


async def test_mass_assignment_on_create_changes_nothing(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory
) -> None:
    a = await factory.customer("A")
    b = await factory.customer("B")
    auth = bearer(await factory.identity_token(a))
    body = {**FORGED, "customer_id": str(b.id), "name": "n", "expire": 86_400}
    response = await client.post(KEYS, json=body, headers=auth)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["id"] != FORGED["id"]
    assert created["customer_id"] == str(a.id)
    assert created["token"] != FORGED["token"]
    assert created["token_prefix"] == created["token"][:11]
    assert created["tm_create"] == clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert created["tm_expire"] == (clock.now() + timedelta(seconds=86_400)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    assert created["tm_update"] is None
    assert created["tm_delete"] is None
    # The key works, and B has not gained a key.
    assert (await client.get("/v1.0/me", headers=bearer(created["token"]))).status_code == 200
    b_auth = bearer(await factory.identity_token(b))
    listed = (await client.get(KEYS, headers=b_auth)).json()["result"]
    assert created["id"] not in [item["id"] for item in listed]
    assert (await client.get(key_url(FORGED["id"]), headers=auth)).status_code == 404


async def test_mass_assignment_on_update_changes_only_name_and_detail(
    client: httpx.AsyncClient, clock: FrozenClock, factory: Factory
) -> None:
    a = await factory.customer("A")
    b = await factory.customer("B")
    key, token = await factory.accesskey(a, name="before")
    auth = bearer(await factory.identity_token(a))
    before = (await client.get(key_url(key.id), headers=auth)).json()
    clock.advance(5)
    body = {**FORGED, "customer_id": str(b.id), "name": "after", "detail": "d"}
    response = await client.put(key_url(key.id), json=body, headers=auth)
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["name"] == "after"
    assert after["detail"] == "d"
    for field in ("id", "customer_id", "token_prefix", "tm_expire", "tm_create", "tm_delete"):
        assert after[field] == before[field], field
    assert after["tm_update"] == clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert "token" not in after
    # The old token still works; the forged one never did.
    assert (await client.get("/v1.0/me", headers=bearer(token))).status_code == 200
    forged = await client.get("/v1.0/me", headers=bearer(FORGED["token"]))
    assert forged.status_code == 401
    assert forged.json()["error"]["reason"] == "INVALID_CREDENTIALS"
    assert (await client.get(key_url(key.id), headers=auth)).json() == after


async def test_mass_assignment_on_login_grants_nothing(
    client: httpx.AsyncClient, services: Services, factory: Factory
) -> None:
    a = await factory.customer("A")
    b = await factory.customer("B")
    agent = await quick_agent(services, a, permission=int(Permission.CUSTOMER_AGENT))
    body = {
        "username": agent.username,
        "password": PASSWORD,
        "permission": 65535,
        "customer_id": str(b.id),
    }
    response = await client.post("/auth/login", json=body)
    assert response.status_code == 200, response.text
    me = (await client.get("/v1.0/me", headers=bearer(response.json()["token"]))).json()
    assert me["permission"] == int(Permission.CUSTOMER_AGENT)
    assert me["customer_id"] == str(a.id)
