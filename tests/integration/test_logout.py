"""POST /auth/logout: the API's own session tokens end the same way as the admin page's."""

from __future__ import annotations

import httpx

from tests.factories import bearer, login
from tests.integration.conftest import PASSWORD, Tenant, assert_error, cookie


async def works(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get("/v1.0/customer", headers=headers)).status_code


async def test_logout_ends_the_session_everywhere_it_is_sent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    assert await works(client, bearer(token)) == 200
    response = await client.post("/auth/logout", headers=bearer(token))
    assert response.status_code == 204, response.text
    assert response.content == b""
    removed = response.headers["set-cookie"]
    assert removed.startswith('token="";')
    assert "Path=/" in removed
    for headers in (bearer(token), cookie(token=token)):
        assert_error(
            await client.get("/v1.0/customer", headers=headers),
            401,
            "UNAUTHENTICATED",
            "INVALID_CREDENTIALS",
        )
    verify = await client.get("/auth/verify", headers=bearer(token))
    assert verify.status_code == 401
    again = await client.post("/auth/logout", headers=bearer(token))
    assert_error(again, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


async def test_logout_with_the_token_cookie_as_a_browser_sends_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    token = await login(client, tenant.username, PASSWORD)
    client.cookies.clear()
    response = await client.post("/auth/logout", headers=cookie(token=token))
    assert response.status_code == 204, response.text
    assert await works(client, bearer(token)) == 401


async def test_logout_ends_only_the_session_sent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ended = await login(client, tenant.username, PASSWORD)
    kept = await login(client, tenant.username, PASSWORD)
    assert (await client.post("/auth/logout", headers=bearer(ended))).status_code == 204
    assert await works(client, bearer(ended)) == 401
    assert await works(client, bearer(kept)) == 200


async def test_an_access_key_cannot_log_out_and_keeps_working(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.post("/auth/logout", headers=tenant.auth)
    message = assert_error(response, 403, "PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "Only a session token can be logged out" in message
    assert await works(client, tenant.auth) == 200


async def test_logout_without_a_credential_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout")
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
