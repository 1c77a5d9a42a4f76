"""Rendering the admin page's templates, with the headers every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from keyplane.errors import KeyplaneError
from keyplane.web.envelope import HTTP_STATUS, error_headers, request_id_of

TEMPLATES = Path(__file__).parent / "templates"
# Every script and style comes from the package; no inline code, no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _environment.get_template(template).render(
        request_id=request_id_of(request.scope), **context
    )
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response


def status_of(error: KeyplaneError) -> int:
    return HTTP_STATUS.get(error.status, 500)


def error_page(request: Request, error: KeyplaneError, **context: Any) -> HTMLResponse:
    """A refusal shown plainly: the contract's status, reason and message, as a page."""
    return page(
        request,
        "error.html",
        status_code=status_of(error),
        headers=error_headers(error),
        error=error,
        **context,
    )
