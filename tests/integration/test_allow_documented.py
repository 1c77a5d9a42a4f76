"""The `Allow` values docs/api.md quotes are the ones a 405 carries."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.docs_examples import ROOT
from tests.integration.conftest import KEYS, Tenant, key_url


def _documented_allow() -> dict[str, str]:
    """``(`GET, HEAD, POST` for `/v1.0/accesskeys`, …)`` in the 405 row of the error table."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| 405 |"))
    return {path: methods for methods, path in re.findall(r"`([A-Z, ]+)` for `([^`]+)`", row)}


async def test_the_documented_allow_headers_are_the_ones_sent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    documented = _documented_allow()
    assert set(documented) == {KEYS, "/v1.0/accesskeys/{id}"}
    for path, methods in documented.items():
        url = key_url(uuid.uuid4()) if path.endswith("{id}") else path
        response = await client.request("PATCH", url, headers=tenant.auth)
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == methods, path
