"""/docs works offline and cannot be framed, and the OpenAPI document says what ids are."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

ASSET = re.compile(r"""(?:src|href)=["']?([^"' >]+)""")


async def test_docs_page_loads_every_asset_from_keyplane_itself(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    assets = ASSET.findall(page.text)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets), assets
    assert any(asset.endswith("swagger-ui.css") for asset in assets), assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    script = await client.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js")))
    assert "SwaggerUIBundle" in script.text
    assert "/openapi.json" in page.text


async def test_unknown_docs_asset_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/assets/nope.js")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["status"], error["reason"]) == ("NOT_FOUND", "ROUTE_NOT_FOUND")
    assert error["request_id"] == response.headers["x-request-id"]


async def test_path_ids_are_uuids_in_openapi(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    path_ids = [
        parameter
        for operations in document["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    ]
    assert path_ids, "expected the access key id in some paths"
    for parameter in path_ids:
        assert parameter["name"].endswith("_id")
        assert parameter["schema"]["format"] == "uuid", parameter
    key = document["components"]["schemas"]["Accesskey"]["properties"]
    assert key["id"]["format"] == "uuid"
    assert key["customer_id"]["format"] == "uuid"
    assert "/docs" not in document["paths"]
    assert not any(path.startswith("/docs") for path in document["paths"])


async def test_docs_page_cannot_be_framed_and_runs_only_its_own_code(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.headers["x-frame-options"] == "DENY"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["content-security-policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    for directive in ("style-src", "connect-src", "form-action"):
        assert policy[directive] == "'self'", directive
    assert policy["img-src"] == "'self' data:"  # the style sheet's icons
    # Its own script files, and the one inline script that starts it, by its hash.
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe" not in page.headers["content-security-policy"]
    assert "http" not in page.headers["content-security-policy"]
