"""What /auth/verify hands a gateway to forward upstream, and how both it and the API read cookies.

The recipes copy ``X-Keyplane-Upstream-Uri``, ``-Cookie`` and ``-Authorization``
over the client's request (docs/gateway.md); here, what keyplane puts in them
for every spelling of a credential, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from keyplane.services.container import Services
from tests.factories import Factory, fake_token, login
from tests.integration.conftest import PASSWORD, Tenant

VERIFY = "/auth/verify"


async def test_every_spelling_of_a_credential_leaves_the_upstream_uri(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = tenant.key
    original = (
        f"/v1.0/calls?AccessKey={key}&a=1&ACCESSKEY={key}&x=1;accesskey={key}"
        f"&%2574oken={key}&token[]={key}&b=2"
    )
    response = await client.get(
        VERIFY, headers={**tenant.auth, "X-Original-URI": original, "X-Original-Method": "GET"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-keyplane-upstream-uri"] == "/v1.0/calls?a=1&x=1&b=2"


@pytest.mark.parametrize(
    ("cookie", "kept"),
    [
        ("AccessKey={key}; theme=dark", "theme=dark"),
        ("a=1, accesskey={key}", "a=1"),
        ("keyplane_admin={jwt}; keyplane_admin_login=x; lang=en", "lang=en"),
        ("TOKEN={jwt}; keyplane_other=1", ""),
    ],
)
async def test_every_credential_and_keyplane_cookie_leaves_the_upstream_cookie(
    client: httpx.AsyncClient, tenant: Tenant, cookie: str, kept: str
) -> None:
    jwt = await login(client, tenant.username, PASSWORD)
    sent = cookie.format(key=tenant.key, jwt=jwt)
    response = await client.get(VERIFY, headers={**tenant.auth, "Cookie": sent})
    assert response.status_code == 200, response.text
    assert response.headers["x-keyplane-upstream-cookie"] == kept


async def test_an_authorization_holding_a_credential_is_not_handed_upstream(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = tenant.key
    cookie = {"Cookie": f"accesskey={key}"}
    forms = {
        f"Bearer {key}": "",
        f"Token {key}": "",
        "Basic " + base64.b64encode(f"{key}:".encode()).decode(): "",
        "Basic dXNlcjpwYXNz": "Basic dXNlcjpwYXNz",
    }
    for authorization, forwarded in forms.items():
        response = await client.get(VERIFY, headers={**cookie, "Authorization": authorization})
        assert response.status_code == 200, (authorization, response.text)
        assert response.headers["x-keyplane-upstream-authorization"] == forwarded
        assert key not in str(response.headers.raw)
    # No Authorization header: none handed back, and the gateway sends none.
    bare = await client.get(VERIFY, headers=cookie)
    assert "x-keyplane-upstream-authorization" not in bare.headers


async def test_verify_and_the_api_read_every_cookie_header_alike(
    client: httpx.AsyncClient, services: Services, factory: Factory, tenant: Tenant
) -> None:
    """Two Cookie headers are one cookie jar for both: a bad session token in the first
    is the request's credential (session sources come first), whatever the second holds."""
    split = [("Cookie", "token=not.a.jwt"), ("Cookie", f"accesskey={tenant.key}")]
    verified = await client.get(VERIFY, headers=split)
    api = await client.get("/v1.0/accesskeys", headers=split)
    assert (verified.status_code, api.status_code) == (401, 401), (verified.text, api.text)
    assert verified.json()["error"]["reason"] == api.json()["error"]["reason"]
    # The last of a name wins, across headers as within one.
    other = await factory.identity_token(await factory.customer())
    for jar in (
        [("Cookie", f"accesskey={other}"), ("Cookie", f"accesskey={tenant.key}")],
        [("Cookie", f"accesskey={other}; accesskey={tenant.key}")],
    ):
        verified = await client.get(VERIFY, headers=jar)
        api = await client.get("/v1.0/me", headers=jar)
        assert verified.status_code == api.status_code == 200, (verified.text, api.text)
        assert verified.headers["x-keyplane-customer-id"] == tenant.id
        assert api.json()["customer_id"] == tenant.id
    # The upstream gets every cookie of every header, but the credentials.
    both = [("Cookie", "a=1"), ("Cookie", f"accesskey={tenant.key}; b=2")]
    verified = await client.get(VERIFY, headers=both)
    assert verified.headers["x-keyplane-upstream-cookie"] == "a=1; b=2"


async def test_verify_and_the_api_read_the_same_authorization_header(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Of two Authorization headers, both read the first."""
    for first, status in ((fake_token(), 401), (tenant.key, 200)):
        other = tenant.key if first != tenant.key else fake_token()
        twice = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {other}")]
        verified = await client.get(VERIFY, headers=twice)
        api = await client.get("/v1.0/me", headers=twice)
        assert (verified.status_code, api.status_code) == (status, status), verified.text
