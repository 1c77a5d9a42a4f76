"""The example API trusts the gateway's identity headers, from the gateway's address only."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import httpx

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "calls_service" / "calls_service.py"
ACME = "11111111-1111-1111-1111-111111111111"
GLOBEX = "22222222-2222-2222-2222-222222222222"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("calls_service_example", SERVICE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(app: object, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://calls")


def _as(customer: str) -> dict[str, str]:
    return {
        "X-Keyplane-Customer-Id": customer,
        "X-Keyplane-Identity-Type": "accesskey",
        "X-Keyplane-Identity-Id": "33333333-3333-3333-3333-333333333333",
    }


async def test_calls_are_kept_per_customer(tmp_path: Path) -> None:
    app = _module().create_app(frozenset({"127.0.0.1"}), str(tmp_path / "record.jsonl"))
    async with _client(app, "127.0.0.1") as gateway:
        made = await gateway.post(
            "/v1.0/calls", json={"source": "1", "destination": "2"}, headers=_as(ACME)
        )
        assert made.status_code == 200
        assert made.json()["customer_id"] == ACME
        mine = await gateway.get("/v1.0/calls", headers=_as(ACME))
        theirs = await gateway.get("/v1.0/calls", headers=_as(GLOBEX))
        nobody = await gateway.get("/v1.0/calls")
    assert [c["id"] for c in mine.json()["result"]] == [made.json()["id"]]
    assert theirs.json() == {"result": [], "next_page_token": ""}
    assert nobody.status_code == 401
    assert len((tmp_path / "record.jsonl").read_text().splitlines()) == 4


async def test_identity_headers_from_elsewhere_are_not_trusted() -> None:
    app = _module().create_app(frozenset({"127.0.0.1"}), None)
    async with _client(app, "192.0.2.10") as outsider:
        response = await outsider.get("/v1.0/calls", headers=_as(ACME))
    assert response.status_code == 401
    assert response.json()["error"]["reason"] == "AUTHENTICATION_REQUIRED"
