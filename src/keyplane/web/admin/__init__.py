"""The /admin page: a customer's access keys and webhook settings in the browser.

Server-rendered (Jinja2) with a little progressive JavaScript; every asset is
served from the package. Its routes are added after the API's, so an API
request is matched before the router ever looks at them, and ``/auth/verify``
never reaches the router at all (``KeyplaneApp``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from keyplane.web.admin.routes import router
from keyplane.web.admin.session import csrf_key, flash_key, login_key

STATIC = Path(__file__).parent / "static"


def install_admin(app: FastAPI, server_secret: bytes) -> None:
    app.state.admin_csrf_key = csrf_key(server_secret)
    app.state.admin_login_key = login_key(server_secret)
    app.state.admin_flash_key = flash_key(server_secret)
    app.include_router(router)
    app.mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static")
