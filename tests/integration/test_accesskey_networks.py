"""IP allowlists over HTTP: given at creation, enforced by the API and ``/auth/verify``
(403 PERMISSION_DENIED) against the client address, never wider than the creator's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from tests.conftest import Replica, replica
from tests.factories import ACCESSKEY_FIELDS, Factory, bearer
from tests.integration.conftest import (
    ACCESSKEY_WITH_TOKEN_FIELDS,
    KEYS,
    assert_error,
    key_url,
)

OFFICE = "198.51.100.7"
ELSEWHERE = "203.0.113.9"


@pytest.fixture
async def one(tmp_path: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Replica]:
    async with replica(tmp_path, database_url, clock) as running:
        yield running


async def make_key(http: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> httpx.Response:
    return await http.post(KEYS, json={"expire": 86_400, **body}, headers=auth)


async def admin(one: Replica) -> dict[str, str]:
    factory = Factory(one.services)
    return bearer(await factory.identity_token(await factory.customer()))


async def test_a_key_works_only_from_its_networks(one: Replica) -> None:
    auth = await admin(one)
    async with one.client(OFFICE) as office, one.client(ELSEWHERE) as elsewhere:
        response = await make_key(
            office, auth, allowed_networks=["198.51.100.0/24", "2001:db8::/32"]
        )
        assert response.status_code == 200, response.text
        created = response.json()
        assert set(created) == ACCESSKEY_WITH_TOKEN_FIELDS | {"allowed_networks"}
        assert created["allowed_networks"] == ["198.51.100.0/24", "2001:db8::/32"]
        token = bearer(created["token"])
        assert (await office.get("/v1.0/customer", headers=token)).status_code == 200
        refused = await elsewhere.get("/v1.0/customer", headers=token)
        assert "address" in assert_error(refused, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        # X-Forwarded-For counts only from a trusted proxy: a client cannot claim an address.
        forged = await elsewhere.get("/v1.0/customer", headers={"X-Forwarded-For": OFFICE, **token})
        assert forged.status_code == 403
        # /auth/verify judges the address of the request it receives (the gateway's client).
        uri = {"X-Original-URI": "/v1.0/calls", **token}
        assert (await office.get("/auth/verify", headers=uri)).status_code == 200
        assert_error(
            await elsewhere.get("/auth/verify", headers=uri),
            403,
            "PERMISSION_DENIED",
            "PERMISSION_DENIED",
        )
        shown = await office.get(
            key_url(created["id"]), params={"expand": "allowed_networks"}, headers=auth
        )
        assert shown.json()["allowed_networks"] == created["allowed_networks"]
        plain = await office.get(key_url(created["id"]), headers=auth)
        assert set(plain.json()) == ACCESSKEY_FIELDS


async def test_an_allowlisted_key_makes_and_rotates_keys_only_within_its_networks(
    one: Replica,
) -> None:
    auth = await admin(one)
    async with one.client(OFFICE) as office:
        maker = await make_key(office, auth, allowed_networks=["198.51.100.0/24"])
        maker_auth = bearer(maker.json()["token"])
        for wider in (None, ["198.51.0.0/16"], ["203.0.113.0/24"]):
            body = {} if wider is None else {"allowed_networks": wider}
            response = await make_key(office, maker_auth, **body)
            assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
        narrower = await make_key(office, maker_auth, allowed_networks=["198.51.100.0/28"])
        assert narrower.status_code == 200, narrower.text
        rotated = await office.post(f"{key_url(narrower.json()['id'])}/rotate", headers=maker_auth)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["allowed_networks"] == ["198.51.100.0/28"]
        anywhere = await make_key(office, auth)
        response = await office.post(f"{key_url(anywhere.json()['id'])}/rotate", headers=maker_auth)
        assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")


@pytest.mark.parametrize(
    "networks", ["198.51.100.0/24", [], ["198.51.100.7/24"], ["example.com"], [24]]
)
async def test_malformed_allowlists_are_400(one: Replica, networks: object) -> None:
    auth = await admin(one)
    async with one.client(OFFICE) as office:
        response = await make_key(office, auth, allowed_networks=networks)
    assert "allowed_networks" in assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
