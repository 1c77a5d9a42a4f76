"""The admin page's login form token, on SQLite and PostgreSQL.

The login form's cookie holds a nonce, and its field an expiry and an HMAC of
both under a key derived from the server's secret. A cookie and field planted
together by another site (a sibling subdomain can set cookies for the parent
domain) are refused, and so is a genuine pair posted from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx
import pytest

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from keyplane.web.admin.session import LOGIN_FORM_SECONDS, csrf_key, login_key
from tests.conftest import DATABASES, TEST_JWT_SECRET
from tests.factories import OPERATOR, Factory
from tests.integration.admin.conftest import (
    PASSWORD,
    csrf_of,
    genuine_form,
    on_both_databases,
    post_login,
    set_cookie_value,
)

SECRET = TEST_JWT_SECRET.encode()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return on_both_databases(request, tmp_path)


def hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert "CSRF_TOKEN_INVALID" in response.text
    assert "keyplane_admin=" not in response.headers.get("set-cookie", "")


async def test_a_planted_login_cookie_and_field_are_refused(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    """A sibling site can plant the cookie and post the form, but cannot sign for its nonce."""
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    expires = int(services.clock.now().timestamp()) + 600
    nonce = "planted-" + "n" * 24
    genuine_nonce, genuine_token = await genuine_form(client)
    forged = {
        # The double submit as it was: the same value in cookie and field.
        "same-value-in-both": (nonce, nonce),
        "mac-under-the-raw-jwt-secret": (
            nonce,
            f"{expires}.{hmac_hex(SECRET, f'{nonce}|{expires}')}",
        ),
        "mac-under-the-session-csrf-key": (
            nonce,
            f"{expires}.{hmac_hex(csrf_key(SECRET), f'{nonce}|{expires}')}",
        ),
        "genuine-token-for-another-nonce": (nonce, genuine_token),
        "genuine-token-with-its-expiry-moved": (
            genuine_nonce,
            f"{expires + 3600}.{genuine_token.partition('.')[2]}",
        ),
        "no-cookie": ("", genuine_token),
        "no-field": (genuine_nonce, ""),
    }
    for name, (cookie_nonce, field) in forged.items():
        response = await post_login(client, agent.username, nonce=cookie_nonce, token=field)
        assert response.status_code == 403, name
        assert_refused(response)
    # The positive control: the pair the server issued logs in.
    accepted = await post_login(client, agent.username, nonce=genuine_nonce, token=genuine_token)
    assert accepted.status_code == 303, accepted.text
    assert set_cookie_value(accepted, "keyplane_admin")


async def test_the_login_forms_key_is_derived_for_that_purpose_only() -> None:
    keys = {SECRET, csrf_key(SECRET), login_key(SECRET)}
    assert len(keys) == 3
    assert login_key(SECRET) == login_key(SECRET)  # every replica derives the same key


async def test_a_login_form_is_good_for_an_hour(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    nonce, token = await genuine_form(client)
    clock.advance(LOGIN_FORM_SECONDS)
    assert_refused(await post_login(client, agent.username, nonce=nonce, token=token))
    nonce, token = await genuine_form(client)
    clock.advance(LOGIN_FORM_SECONDS - 1)
    accepted = await post_login(client, agent.username, nonce=nonce, token=token)
    assert accepted.status_code == 303, accepted.text


@pytest.mark.parametrize("fetch_site", ["same-site", "cross-site", "Same-Site"])
async def test_a_login_form_posted_from_another_origin_is_refused(
    client: httpx.AsyncClient, factory: Factory, fetch_site: str
) -> None:
    """The attacker's own genuine pair, planted and posted from a sibling subdomain."""
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    nonce, token = await genuine_form(client)
    refused = await post_login(
        client, agent.username, nonce=nonce, token=token, headers={"Sec-Fetch-Site": fetch_site}
    )
    assert_refused(refused)
    same_origin = await post_login(
        client, agent.username, nonce=nonce, token=token, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same_origin.status_code == 303, same_origin.text


async def test_a_failed_login_gives_a_fresh_form(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    agent = await factory.agent(await factory.customer(), password=PASSWORD)
    nonce, token = await genuine_form(client)
    failed = await client.post(
        "/admin/login",
        data={"csrf": token, "username": agent.username, "password": "wrong"},
        headers={"Cookie": f"keyplane_admin_login={nonce}"},
    )
    assert failed.status_code == 400
    again_nonce, again_token = set_cookie_value(failed, "keyplane_admin_login"), csrf_of(failed)
    assert again_nonce != nonce
    accepted = await post_login(client, agent.username, nonce=again_nonce, token=again_token)
    assert accepted.status_code == 303, accepted.text


async def test_a_change_posted_from_another_origin_is_refused_even_with_the_token(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    nonce, token = await genuine_form(client)
    assert (await post_login(client, agent.username, nonce=nonce, token=token)).is_redirect
    csrf = csrf_of(await client.get("/admin/keys"))
    form = {"csrf": csrf, "name": "from-a-sibling", "expiry": "30"}
    refused = await client.post("/admin/keys", data=form, headers={"Sec-Fetch-Site": "same-site"})
    assert refused.status_code == 403
    assert "Form refused" in refused.text
    page = await services.accesskeys.list_page(OPERATOR, customer.id, page_size=10, cursor=None)
    assert page.items == []
    accepted = await client.post(
        "/admin/keys", data=form, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert accepted.status_code == 303
