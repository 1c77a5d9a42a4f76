"""Contract section 2: no credential in any log line, the access log included."""

from __future__ import annotations

import io
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from keyplane.services.container import Services
from tests.factories import bearer, login
from tests.integration.conftest import KEYS, PASSWORD, Tenant, cookie, create_key, key_url
from tests.logcapture import captured_logging


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The production logging setup, writing to a buffer; restored afterwards."""
    with captured_logging("json") as buffer:
        yield buffer


async def test_credentials_never_reach_the_logs(
    client: httpx.AsyncClient,
    services: Services,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    log_output: io.StringIO,
) -> None:
    session = await login(client, tenant.username, PASSWORD)
    created = await create_key(client, tenant.auth)
    new_token = created["token"]
    key = tenant.key
    underscore_encoded = key.replace("_", "%5F")
    requests = [
        f"{KEYS}?accesskey={key}",
        f"{KEYS}?token={session}",
        f"{KEYS}?page_size=5&accesskey={underscore_encoded}",
        f"{KEYS}?{quote('accesskey')}={quote(key, safe='')}",
        f"{KEYS}?access%6Bey={key}",
        f"{KEYS}?tok%65n={session}",
        f"{KEYS}?accesskey={key}&token={session}",
        f"/v1.0/customer?token={session.replace('.', '%2E')}",
        f"{key_url(new_token)}?accesskey={key}",
        f"/nowhere/{new_token}?x={session}",
    ]
    for url in requests:
        response = await client.get(url)
        assert response.status_code in (200, 400, 401, 404), (url, response.status_code)
    await client.get(KEYS, headers=bearer(key))
    await client.get(KEYS, headers=bearer(session))
    await client.get(KEYS, headers=cookie(accesskey=key, token=session))
    await client.post("/auth/login", json={"username": tenant.username, "password": PASSWORD})

    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"failed for {key} and {session}")

    monkeypatch.setattr(services.accesskeys, "list_page", explode)
    failed = await client.get(KEYS, params={"accesskey": key})
    assert failed.status_code == 500

    logs = log_output.getvalue()
    assert logs.count("keyplane.access") >= len(requests) + 5, logs  # the access log was written
    assert "keyplane.error" in logs  # and the unhandled error
    for secret in (key, new_token, session, key[3:], new_token[3:], session.split(".")[1]):
        assert secret not in logs
        assert quote(secret, safe="") not in logs
    assert underscore_encoded not in logs
    assert session.replace(".", "%2E") not in logs
    assert PASSWORD not in logs
