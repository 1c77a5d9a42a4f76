from __future__ import annotations

import httpx

from tests.factories import Factory


async def test_list_with_a_fresh_key(client: httpx.AsyncClient, factory: Factory) -> None:
    customer = await factory.customer()
    token = await factory.identity_token(customer)
    response = await client.get("/v1.0/accesskeys", params={"accesskey": token})
    assert response.status_code == 200
    assert len(response.json()["result"]) == 1
