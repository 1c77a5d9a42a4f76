"""The /admin routes in process: session cookie, CSRF, the key changes, permissions, logs."""

from __future__ import annotations

import io
import re

import httpx
import pytest

from keyplane.domain.permissions import Permission
from keyplane.errors import LoginRefused
from keyplane.services.container import Services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from tests.factories import OPERATOR, Factory
from tests.integration.admin.conftest import PASSWORD, Admin, agent_on_page, csrf_of, log_in
from tests.logcapture import captured_logging

TOKEN = re.compile("vb" + "_" + r"[A-Za-z0-9]{32}")


def set_cookie(response: httpx.Response, name: str) -> str:
    found = [value for value in response.headers.get_list("set-cookie") if value.startswith(name)]
    assert len(found) == 1, response.headers
    return found[0]


async def keys_of(services: Services, admin: Admin) -> list[str]:
    page = await services.accesskeys.list_page(
        OPERATOR, admin.customer.id, page_size=100, cursor=None
    )
    return [key.name for key in page.items]


async def test_login_sets_a_strict_httponly_cookie_for_the_admin_path_only(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    form = await client.get("/admin/login")
    assert form.status_code == 200
    assert "secure" not in set_cookie(form, "keyplane_admin_login=").lower()  # plain http
    response = await client.post(
        "/admin/login",
        data={"csrf": csrf_of(form), "username": agent.username, "password": PASSWORD},
    )
    assert response.status_code == 303
    cookie = set_cookie(response, "keyplane_admin=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/admin"} <= flags, cookie
    assert "secure" not in flags
    # The API does not take the page's cookie as a credential.
    jwt = cookie.split(";")[0].partition("=")[2]
    api = await client.get("/v1.0/customer", headers={"Cookie": f"keyplane_admin={jwt}"})
    assert api.status_code == 401


async def test_the_cookies_are_secure_over_tls(client: httpx.AsyncClient, factory: Factory) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    client.base_url = httpx.URL("https://testserver")
    form = await client.get("/admin/login")
    assert "; secure" in set_cookie(form, "keyplane_admin_login=").lower()
    response = await client.post(
        "/admin/login",
        data={"csrf": csrf_of(form), "username": agent.username, "password": PASSWORD},
    )
    assert "; secure" in set_cookie(response, "keyplane_admin=").lower()


async def test_a_failed_login_says_what_the_api_says(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    for username, password in ((agent.username, "wrong"), ("nobody", PASSWORD)):
        form = await client.get("/admin/login")
        response = await client.post(
            "/admin/login",
            data={"csrf": csrf_of(form), "username": username, "password": password},
        )
        assert response.status_code == 400
        assert LoginRefused.default_message in response.text
        assert "keyplane_admin=" not in response.headers.get("set-cookie", "")


async def test_logins_from_the_page_share_the_apis_rate_limit(
    client: httpx.AsyncClient, factory: Factory, services: Services
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    statuses = []
    for _ in range(services.settings.ratelimit_login_failures_burst + 1):
        form = await client.get("/admin/login")
        response = await client.post(
            "/admin/login",
            data={"csrf": csrf_of(form), "username": agent.username, "password": "wrong"},
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses
    assert f"Try again in {response.headers['retry-after']} second" in response.text
    api = await client.post("/auth/login", json={"username": agent.username, "password": PASSWORD})
    assert api.status_code == 429


async def test_a_login_form_without_its_token_is_refused(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    response = await client.post(
        "/admin/login", data={"csrf": "forged", "username": agent.username, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "CSRF_TOKEN_INVALID" in response.text
    assert "keyplane_admin=" not in response.headers.get("set-cookie", "")


async def test_pages_without_a_session_go_to_the_login_form(client: httpx.AsyncClient) -> None:
    for path in ("/admin/keys", "/admin/settings"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/login"
    forged = await client.get("/admin/keys", headers={"Cookie": "keyplane_admin=ey.not.valid"})
    assert forged.headers["location"] == "/admin/login"
    assert 'keyplane_admin=""' in forged.headers["set-cookie"]  # the bad cookie is dropped


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
async def test_a_change_without_the_sessions_token_is_refused(
    client: httpx.AsyncClient, services: Services, admin: Admin, csrf: str | None
) -> None:
    form = {"name": "forged", "detail": "", "expiry": "30"}
    if csrf is not None:
        form["csrf"] = csrf
    response = await client.post("/admin/keys", data=form)
    assert response.status_code == 403
    assert "Form refused" in response.text
    assert "forged" not in await keys_of(services, admin)


async def test_create_shows_the_token_once(
    client: httpx.AsyncClient, services: Services, admin: Admin
) -> None:
    response = await client.post(
        "/admin/keys",
        data={"csrf": admin.csrf, "name": "reporting", "detail": "d", "expiry": "30"},
    )
    assert response.status_code == 303
    shown = await client.get(response.headers["location"])
    tokens = TOKEN.findall(shown.text)
    assert len(tokens) == 1
    assert "will not be shown again" in shown.text
    listed = await client.get("/admin/keys")
    assert tokens[0] not in listed.text
    assert tokens[0][:11] in listed.text  # the prefix is shown
    assert await keys_of(services, admin) == ["reporting"]


@pytest.mark.parametrize(
    ("expiry", "custom", "message"),
    [("custom", "0", "at least one day"), ("custom", "", "whole days"), ("x", "", "whole days")],
)
async def test_an_expiry_under_a_day_is_explained(
    client: httpx.AsyncClient, admin: Admin, expiry: str, custom: str, message: str
) -> None:
    response = await client.post(
        "/admin/keys",
        data={"csrf": admin.csrf, "name": "n", "expiry": expiry, "custom_days": custom},
    )
    assert response.status_code == 400
    assert message in response.text


async def test_each_change_asks_first_naming_the_key_then_happens(
    client: httpx.AsyncClient, services: Services, admin: Admin, factory: Factory
) -> None:
    key, _ = await factory.accesskey(admin.customer, name="billing")
    base = f"/admin/keys/{key.id}"
    rename = await client.post(
        f"{base}/update", data={"csrf": admin.csrf, "name": "billing-2", "detail": "new"}
    )
    assert rename.status_code == 303
    for action, state in (("disable", "disabled"), ("enable", "active")):
        before = await services.accesskeys.get(OPERATOR, key.id)
        ask = await client.post(f"{base}/{action}", data={"csrf": admin.csrf})
        assert ask.status_code == 200
        assert "“billing-2”" in ask.text
        assert await services.accesskeys.get(OPERATOR, key.id) == before  # nothing yet
        done = await client.post(f"{base}/{action}", data={"csrf": admin.csrf, "confirmed": "yes"})
        assert done.status_code == 303, done.text
        page = await client.get(done.headers["location"])
        assert f'state-{state}">{state}' in page.text
    rotated = await client.post(
        f"{base}/rotate", data={"csrf": admin.csrf, "confirmed": "yes", "grace": "3600"}
    )
    assert rotated.status_code == 303
    shown = await client.get(rotated.headers["location"])
    assert len(TOKEN.findall(shown.text)) == 1
    assert "state-rotating" in shown.text
    delete = await client.post(f"{base}/delete", data={"csrf": admin.csrf, "confirmed": "yes"})
    assert delete.status_code == 303
    assert await keys_of(services, admin) == ["billing-2"]  # the replacement only


async def test_another_customers_key_is_not_found(
    client: httpx.AsyncClient, admin: Admin, factory: Factory
) -> None:
    other = await factory.customer()
    key, _ = await factory.accesskey(other, name="theirs")
    response = await client.post(
        f"/admin/keys/{key.id}/delete", data={"csrf": admin.csrf, "confirmed": "yes"}
    )
    assert response.status_code == 404
    assert "theirs" not in response.text


async def test_filter_and_paging(client: httpx.AsyncClient, admin: Admin, factory: Factory) -> None:
    for index in range(25):
        await factory.accesskey(admin.customer, name=f"{'red' if index % 2 else 'blue'}-{index}")
    first = await client.get("/admin/keys")
    assert first.text.count('data-label="Prefix"') == 20
    following = re.search(r'href="(/admin/keys\?page_token=[^"]+)" rel="next"', first.text)
    assert following
    second = await client.get(following.group(1).replace("&amp;", "&"))
    assert second.text.count('data-label="Prefix"') == 5
    red = await client.get("/admin/keys", params={"name": "RED"})
    assert red.text.count('data-label="Prefix"') == 12
    assert "blue-" not in red.text


@pytest.mark.parametrize(
    ("permission", "keys_status", "settings_status"),
    [
        (Permission.CUSTOMER_AGENT, 403, 403),
        (Permission.CUSTOMER_MANAGER, 403, 200),
        (Permission.CUSTOMER_ADMIN, 200, 200),
    ],
)
async def test_the_page_refuses_what_the_api_refuses(
    client: httpx.AsyncClient,
    factory: Factory,
    permission: Permission,
    keys_status: int,
    settings_status: int,
) -> None:
    agent = await agent_on_page(client, factory, permission)
    first_page = (
        "/admin/settings" if (keys_status, settings_status) == (403, 200) else "/admin/keys"
    )
    assert (await client.get("/admin")).headers["location"] == first_page
    assert (await client.get("/admin/keys")).status_code == keys_status
    created = await client.post(
        "/admin/keys", data={"csrf": agent.csrf, "name": "x", "expiry": "30"}
    )
    assert created.status_code == (303 if keys_status == 200 else keys_status)
    assert (await client.get("/admin/settings")).status_code == settings_status
    if keys_status == 403:
        assert "customer admin permission" in created.text


async def test_webhook_settings(
    client: httpx.AsyncClient, services: Services, admin: Admin
) -> None:
    refused = await client.post(
        "/admin/settings",
        data={"csrf": admin.csrf, "webhook_uri": "http://127.0.0.1/hook", "webhook_method": "PUT"},
    )
    assert refused.status_code == 400
    assert "webhook_uri" in refused.text
    saved = await client.post(
        "/admin/settings",
        data={
            "csrf": admin.csrf,
            "webhook_uri": "https://example.com/hook",
            "webhook_method": "PUT",
        },
    )
    assert saved.status_code == 303
    customer = await services.customers.get_customer(OPERATOR, admin.customer.id)
    assert (customer.webhook_uri, customer.webhook_method) == ("https://example.com/hook", "PUT")
    assert customer.email == admin.customer.email  # the rest of the profile is kept
    page = await client.get("/admin/settings")
    assert "https://example.com/hook" in page.text


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://[::1", "is not a valid URL"),  # each of the first two was a 500
        ("http://[bad]/", "is not a valid URL"),
        ("http://example.com/hook\r\nX-Injected: 1", "must not contain spaces or control"),
        ("http://example.com/a hook", "must not contain spaces or control"),
        ("http://example.com:99999/hook", "has a port that is not a number from 1 to 65535"),
        ("http://[64:ff9b::7f00:1]/hook", "points to a private, loopback or reserved address"),
        ("http://[::7f00:1]/hook", "points to a private, loopback or reserved address"),
    ],
)
async def test_a_bad_webhook_uri_is_shown_as_a_problem_and_not_saved(
    client: httpx.AsyncClient, services: Services, admin: Admin, uri: str, problem: str
) -> None:
    refused = await client.post(
        "/admin/settings",
        data={"csrf": admin.csrf, "webhook_uri": uri, "webhook_method": "POST"},
    )
    assert refused.status_code == 400, refused.text
    alert = re.search(r'<p class="problem" role="alert">([^<]*)</p>', refused.text)
    assert alert is not None, refused.text
    assert alert.group(1).startswith("&#39;webhook_uri&#39; " + problem)
    customer = await services.customers.get_customer(OPERATOR, admin.customer.id)
    assert customer.webhook_uri == ""


async def test_logout_ends_the_session(client: httpx.AsyncClient, admin: Admin) -> None:
    refused = await client.post("/admin/logout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    response = await client.post("/admin/logout", data={"csrf": admin.csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?done=logged_out"
    assert 'keyplane_admin=""' in response.headers["set-cookie"]
    assert (await client.get("/admin/keys")).headers["location"] == "/admin/login"


async def test_the_login_form_sends_a_logged_in_agent_on(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    response = await client.get("/admin/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"


async def test_pages_send_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/admin/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for asset in ("admin.js", "admin.css", "favicon.svg"):
        assert (await client.get(f"/admin/static/{asset}")).status_code == 200
    assert "/admin" not in (await client.get("/openapi.json")).text


async def test_no_password_token_or_session_reaches_the_logs(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    customer = await factory.customer()
    agent = await factory.agent(customer, password=PASSWORD)
    buffer: io.StringIO
    with captured_logging("json") as buffer:
        csrf = await log_in(client, agent.username)
        posted = await client.post("/admin/keys", data={"csrf": csrf, "name": "k", "expiry": "1"})
        created = await client.get(posted.headers["location"])
        jwt = next(c.value for c in client.cookies.jar if c.name == "keyplane_admin")
        await client.post("/admin/logout", data={"csrf": csrf})
    token = TOKEN.findall(created.text)[0]
    logged = buffer.getvalue()
    assert "/admin/keys" in logged  # the access log was captured
    for secret in (PASSWORD, token, jwt, csrf):
        assert secret not in logged


async def test_a_form_with_too_many_fields_is_refused_not_an_error(
    client: httpx.AsyncClient, admin: Admin
) -> None:
    fields = "&".join(f"f{index}=x" for index in range(100))
    response = await client.post(
        "/admin/keys",
        content=f"csrf={admin.csrf}&{fields}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403
    assert "Form refused" in response.text


def test_the_admin_routes_come_after_the_apis(settings: Settings, services: Services) -> None:
    """An API request is matched before the admin page's routes are looked at."""
    paths = [getattr(route, "path", "") for route in create_app(settings, services=services).routes]
    first_admin = min(index for index, path in enumerate(paths) if path.startswith("/admin"))
    assert all(not path.startswith("/admin") for path in paths[:first_admin])
    assert all(path.startswith("/admin") for path in paths[first_admin:])
