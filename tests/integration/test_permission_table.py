"""The table "Who may do what" of docs/lifecycle.md, run cell by cell against the API.

The table is read from the document, so a cell cannot say one thing while the
API does another: each row is a credential built here, each column an action
run here, and each cell ("yes", "no", with the notes 1 and 2) says what the
action must answer for that credential.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from keyplane.domain.networks import parse_networks
from keyplane.domain.permissions import Permission
from keyplane.domain.scopes import parse_scopes
from keyplane.domain.timefmt import format_timestamp
from keyplane.services.accesskeys import MAX_EXPIRE
from keyplane.services.container import Services
from tests.docs_examples import ROOT
from tests.factories import ONE_DAY, ONE_YEAR, OPERATOR, Factory, bearer, login
from tests.integration.conftest import KEYS, PASSWORD, assert_error, fmt, key_url, quick_agent

EVERY_METHOD = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
SCOPED = [{"methods": EVERY_METHOD, "path_prefix": "/v1.0"}]  # allows every API request
ALLOWLIST = ["127.0.0.0/8"]  # the test client's address
HOOK = "https://hooks.example.com/keyplane"
BOUNDED, COVERED = "¹", "²"  # the table's notes 1 and 2


def read_table() -> tuple[list[str], dict[str, dict[str, str]]]:
    """The columns and, for each credential, its cells (column: text)."""
    text = (ROOT / "docs" / "lifecycle.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Who may do what\n") + 1 :]
    section = section.split("\n## ", 1)[0]  # up to the next section, if any
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    header, rows = split[0], [row for row in split[1:] if set(row[0]) != {"-"}]
    columns = header[1:]
    table = {}
    for row in rows:
        assert len(row) == len(header), row
        table[row[0]] = dict(zip(columns, row[1:], strict=True))
    return columns, table


COLUMNS, TABLE = read_table()


@dataclass(frozen=True)
class Cell:
    allowed: bool
    bounded: bool  # note 1: nothing it makes outlives it
    covered_only: bool  # note 2: only keys within its restrictions

    @classmethod
    def parse(cls, text: str) -> Cell:
        match = re.fullmatch(r"(yes|no)((?:[¹²] ?)*)", text)
        assert match, f"a cell is yes or no with notes ¹ ²: {text!r}"
        return cls(match[1] == "yes", BOUNDED in match[2], COVERED in match[2])


@dataclass
class Caller:
    auth: dict[str, str]
    restrictions: dict[str, Any]  # as the API takes them: scopes, allowed_networks
    tm_expire: datetime | None  # an access key's


class World:
    """One customer, the credential of one row, and fresh keys to act on."""

    def __init__(self, client: httpx.AsyncClient, services: Services, factory: Factory) -> None:
        self.client = client
        self.services = services
        self.factory = factory

    async def build(self, credential: str) -> Caller:
        self.customer = await self.factory.customer()
        session = re.fullmatch(r"session, .* \((\d+)\)", credential)
        if session:
            agent = await quick_agent(
                self.services, self.customer, permission=int(session.group(1))
            )
            return Caller(bearer(await login(self.client, agent.username, PASSWORD)), {}, None)
        restrictions: dict[str, Any] = {
            "unrestricted access key": {},
            "scoped access key, where its scopes allow the request": {"scopes": SCOPED},
            "`read_only` access key": {"scopes": "read_only"},
            "IP-allowlisted access key, from an allowed address": {"allowed_networks": ALLOWLIST},
        }[credential]
        key, token = await self.key(restrictions, expire=ONE_YEAR)
        return Caller(bearer(token), restrictions, key["tm_expire"])

    async def key(self, restrictions: dict[str, Any], *, expire: int = MAX_EXPIRE) -> Any:
        """A key of the customer, made by the operator: (its fields, its token)."""
        key, token = await self.services.accesskeys.create(
            OPERATOR,
            self.customer.id,
            name="target",
            detail="",
            expire=expire,
            scopes=parse_scopes(restrictions.get("scopes")),
            allowed_networks=parse_networks(restrictions.get("allowed_networks")),
        )
        return {"id": str(key.id), "tm_expire": key.tm_expire}, token


def check(response: httpx.Response, allowed: bool, what: str) -> None:
    if allowed:
        assert response.is_success, f"{what}: {response.status_code} {response.text}"
    else:
        assert response.status_code == 403, f"{what}: {response.status_code} {response.text}"
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")


async def on_keys(
    world: World, caller: Caller, cell: Cell, what: str, action: str, **body: Any
) -> None:
    """``action`` on a key within the caller's restrictions, and, for note 2, on one beyond."""
    if action == "expire":  # within every caller's life and every target's
        body.setdefault("tm_expire", fmt(world.services.clock.now() + timedelta(days=2)))
    targets = [(caller.restrictions, cell.allowed)]
    if cell.covered_only:
        targets.append(({}, False))
    for restrictions, allowed in targets:
        target, _ = await world.key(restrictions)
        response = await send(world.client, caller, target, action, **body)
        check(response, allowed, f"{what} on a key with {restrictions or 'no restrictions'}")


async def send(
    client: httpx.AsyncClient, caller: Caller, target: dict[str, Any], action: str, **body: Any
) -> httpx.Response:
    url = key_url(target["id"])
    if action == "read":
        return await client.get(url, headers=caller.auth)
    if action == "update":
        return await client.put(url, json={"name": "changed"}, headers=caller.auth)
    if action == "delete":
        return await client.delete(url, headers=caller.auth)
    return await client.post(f"{url}/{action}", json=body, headers=caller.auth)


async def list_read(world: World, caller: Caller, cell: Cell) -> None:
    check(await world.client.get(KEYS, headers=caller.auth), cell.allowed, "list")
    await on_keys(world, caller, cell, "read", "read")


async def create(world: World, caller: Caller, cell: Cell) -> None:
    client, auth = world.client, caller.auth
    made = await client.post(KEYS, json={"expire": ONE_DAY, **caller.restrictions}, headers=auth)
    check(made, cell.allowed, "create within its restrictions")
    if cell.covered_only:
        check(await client.post(KEYS, json={"expire": ONE_DAY}, headers=auth), False, "create")
    if not cell.allowed:
        return
    longest = await client.post(
        KEYS, json={"expire": MAX_EXPIRE, **caller.restrictions}, headers=auth
    )
    if cell.bounded:
        assert_error(longest, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
    else:
        assert longest.status_code == 200, longest.text


async def update(world: World, caller: Caller, cell: Cell) -> None:
    await on_keys(world, caller, cell, "update", "update")


async def lifecycle(world: World, caller: Caller, cell: Cell) -> None:
    for action in ("disable", "enable", "expire"):
        await on_keys(world, caller, cell, action, action)
    if not cell.allowed:
        return
    target, _ = await world.key(caller.restrictions)
    end = caller.tm_expire or world.services.clock.now() + timedelta(seconds=ONE_YEAR)
    later = await send(
        world.client, caller, target, "expire", tm_expire=fmt(end + timedelta(days=1))
    )
    if cell.bounded:
        message = assert_error(later, 400, "INVALID_ARGUMENT", "EXPIRE_ABOVE_MAXIMUM")
        assert str(format_timestamp(end)) in message
    else:
        assert later.status_code == 200, later.text


async def rotate(world: World, caller: Caller, cell: Cell) -> None:
    await on_keys(world, caller, cell, "rotate", "rotate")
    if not cell.allowed:
        return
    target, _ = await world.key(caller.restrictions)  # lives as long as any key may
    rotated = await send(world.client, caller, target, "rotate")
    assert rotated.status_code == 200, rotated.text
    now = world.services.clock.now()
    expected = caller.tm_expire if cell.bounded else now + timedelta(seconds=MAX_EXPIRE)
    assert rotated.json()["tm_expire"] == format_timestamp(expected)


async def delete(world: World, caller: Caller, cell: Cell) -> None:
    await on_keys(world, caller, cell, "delete", "delete")


async def read_customer(world: World, caller: Caller, cell: Cell) -> None:
    check(await world.client.get("/v1.0/customer", headers=caller.auth), cell.allowed, "read")


async def change_profile(world: World, caller: Caller, cell: Cell) -> None:
    # The customer has no webhook, and the body sends none: the webhook stays as it is.
    response = await world.client.put(
        "/v1.0/customer", json={"name": "renamed"}, headers=caller.auth
    )
    check(response, cell.allowed, "change the profile")


async def change_webhook(world: World, caller: Caller, cell: Cell) -> None:
    response = await world.client.put(
        "/v1.0/customer", json={"name": "acme", "webhook_uri": HOOK}, headers=caller.auth
    )
    check(response, cell.allowed, "change the webhook")
    stored = await world.services.customers.get_customer(OPERATOR, world.customer.id)
    assert stored.webhook_uri == (HOOK if cell.allowed else "")


async def webhook_secret(world: World, caller: Caller, cell: Cell) -> None:
    path = "/v1.0/customer/webhook_secret"
    check(await world.client.get(path, headers=caller.auth), cell.allowed, "read the secret")
    check(await world.client.post(path, headers=caller.auth), cell.allowed, "rotate the secret")


async def read_audit(world: World, caller: Caller, cell: Cell) -> None:
    check(await world.client.get("/v1.0/audit", headers=caller.auth), cell.allowed, "audit")


async def deliveries(world: World, caller: Caller, cell: Cell) -> None:
    path = "/v1.0/customer/webhook_deliveries"
    check(await world.client.get(path, headers=caller.auth), cell.allowed, "deliveries")


ACTIONS = {
    "list, read keys": list_read,
    "create key": create,
    "update key": update,
    "disable, enable, expire key": lifecycle,
    "rotate key": rotate,
    "delete key": delete,
    "read customer": read_customer,
    "change customer profile": change_profile,
    "change webhook": change_webhook,
    "read, rotate webhook secret": webhook_secret,
    "read audit": read_audit,
    "webhook deliveries": deliveries,
}
CREDENTIALS = [
    "session, customer agent (16)",
    "session, customer manager (64)",
    "session, customer admin (32)",
    "session, project super admin (1)",
    "unrestricted access key",
    "scoped access key, where its scopes allow the request",
    "`read_only` access key",
    "IP-allowlisted access key, from an allowed address",
]


def test_the_table_has_every_credential_and_action() -> None:
    assert list(ACTIONS) == COLUMNS
    assert list(TABLE) == CREDENTIALS
    assert {int(bit) for bit in Permission if bit not in (Permission.NONE, Permission.ALL)} == {
        int(re.findall(r"\d+", name)[0]) for name in CREDENTIALS if name.startswith("session")
    }
    for cells in TABLE.values():
        for text in cells.values():
            Cell.parse(text)


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_every_cell_of_the_table_holds(
    client: httpx.AsyncClient, services: Services, factory: Factory, credential: str
) -> None:
    for column, text in TABLE[credential].items():
        world = World(client, services, factory)
        caller = await world.build(credential)
        await ACTIONS[column](world, caller, Cell.parse(text))
