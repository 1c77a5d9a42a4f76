"""The Swagger UI at /docs, served from the installed package (no CDN).

The page gets the framing protection of the /admin page (``X-Frame-Options:
DENY``, ``frame-ancestors 'none'``) and a Content Security Policy that allows
what it needs and nothing from another origin: its own script and style files
from /docs/assets, the one inline script that starts it (allowed by its
SHA-256, computed here from the page itself), the icons its style sheet holds
as ``data:`` images, and requests to keyplane itself (the OpenAPI document,
"Try it out").
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(html: str) -> str:
    """The policy for ``html``: its inline scripts allowed by hash, everything else 'self'."""
    digests = (hashlib.sha256(script.encode()).digest() for script in _INLINE_SCRIPT.findall(html))
    hashes = " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def install_docs_ui(app: FastAPI, *, title: str) -> None:
    """Serve /docs and its assets, so the page works with no access to the internet."""
    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{title} - API",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
    )
    html = bytes(page.body).decode()
    headers = {
        "Content-Security-Policy": content_security_policy(html),
        "X-Frame-Options": "DENY",
    }

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)
