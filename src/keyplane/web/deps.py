"""FastAPI dependencies: the services, and who the caller is."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection
from fastapi.security import APIKeyCookie, APIKeyQuery, HTTPBearer
from fastapi.security.base import SecurityBase

from keyplane.domain import scopes
from keyplane.domain.audit import Origin, set_origin
from keyplane.domain.permissions import Identity
from keyplane.errors import AuthenticationRequired, PermissionDenied
from keyplane.services.container import Services
from keyplane.services.ratelimits import Decision
from keyplane.web.credentials import (
    cookie_header,
    find_credential,
    is_cross_site_write,
    parse_cookies,
)


class _CredentialCookie(APIKeyCookie):
    """An ``APIKeyCookie`` read with keyplane's linear parser, never ``request.cookies``."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        return self.check_api_key(request_cookies(request).get(self.model.name))


def request_cookies(request: HTTPConnection) -> dict[str, str]:
    """The credential cookies of a request, read as ``/auth/verify`` reads them."""
    return parse_cookies(cookie_header(request.scope["headers"]))


class CrossSiteRequest(PermissionDenied):
    default_reason = "CROSS_SITE_REQUEST"
    default_message = (
        "This request changes something, came from another site (Origin or Sec-Fetch-Site), "
        "and carried its credential in a cookie, which only counts for requests from "
        "keyplane's own origin: send the credential in the Authorization header instead."
    )


def refuse_cross_site_cookie(request: Request) -> None:
    """A cookie credential counts for a write only when the browser sent it from this origin."""
    headers = request.headers
    if is_cross_site_write(
        request.method,
        scheme=request.scope.get("scheme", "http"),
        host=headers.get("host"),
        origin=headers.get("origin"),
        fetch_site=headers.get("sec-fetch-site"),
    ):
        raise CrossSiteRequest()


# Every way to authenticate, as /openapi.json documents it (``document_security``
# in web/app.py). They are documentation only, never per-request dependencies:
# ``find_credential`` reads the credential once, with the contract's precedence.
_session_cookie = _CredentialCookie(
    name="token",
    scheme_name="SessionCookie",
    auto_error=False,
    description="Session token (JWT from POST /auth/login) in the `token` cookie.",
)
_session_query = APIKeyQuery(
    name="token",
    scheme_name="SessionQuery",
    auto_error=False,
    description="Session token in `?token=`. Prefer the Authorization header.",
)
_bearer = HTTPBearer(
    scheme_name="Bearer",
    bearerFormat="JWT or vb_ access key",
    auto_error=False,
    description="`Authorization: Bearer <session JWT>` or `Authorization: Bearer vb_…`.",
)
_accesskey_cookie = _CredentialCookie(
    name="accesskey",
    scheme_name="AccesskeyCookie",
    auto_error=False,
    description="Access key in the `accesskey` cookie.",
)
_accesskey_query = APIKeyQuery(
    name="accesskey",
    scheme_name="AccesskeyQuery",
    auto_error=False,
    description="Access key in `?accesskey=` (VoIPBIN style). Prefer the Authorization header.",
)


def services_of(request: Request) -> Services:
    """The app's services, read directly: for hot routes, where a dependency costs a pass."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str:
    """The peer, or the client named by a trusted proxy (``KEYPLANE_TRUSTED_PROXIES``)."""
    return request.client.host if request.client else ""


def bind_origin(request: Request) -> None:
    """Name this request's id and client for the audit log (read by the services)."""
    state = request.scope.get("state", {})
    set_origin(Origin(str(state.get("request_id", "")), client_address(request)))


RATELIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def ratelimit_values(decision: Decision) -> tuple[str, str, str]:
    """The values of ``RATELIMIT_HEADERS``, in that order."""
    return (
        str(decision.limit),
        str(decision.remaining),
        str(max(0, math.ceil(decision.reset_after))),
    )


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    return dict(zip(RATELIMIT_HEADERS, ratelimit_values(decision), strict=True))


# What a restricted key's scopes read besides the method and the path (method
# overrides, Content-Type), as ASGI names headers.
SCOPE_HEADERS = frozenset(name.encode() for name in scopes.HEADER_NAMES)


def scope_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """The request's headers among ``SCOPE_HEADERS``, for ``AuthService.authenticate``."""
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name in SCOPE_HEADERS
    )


SECURITY_SCHEMES: tuple[SecurityBase, ...] = (
    _session_cookie,
    _session_query,
    _bearer,
    _accesskey_cookie,
    _accesskey_query,
)


async def current_identity(request: Request) -> Identity:
    """The caller; every route that depends on it is documented with ``SECURITY_SCHEMES``."""
    services: Services = request.app.state.services
    bind_origin(request)
    credential = find_credential(
        request_cookies(request), request.query_params, request.headers.get("authorization")
    )
    if credential is None:
        services.auth.refused_without_credential()
        raise AuthenticationRequired()
    if credential.source == "cookie":
        refuse_cross_site_cookie(request)
    path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    identity, decision = await services.auth.authenticate(
        credential,
        client=client_address(request),
        method=request.method,
        path=f"{path}?{query}" if query else path,  # a ``_method`` there counts too
        headers=scope_headers(request.scope["headers"]),
    )
    # Sent with whatever response this request gets, errors included.
    request.state.response_headers = ratelimit_headers(decision)
    return identity


CurrentIdentity = Annotated[Identity, Depends(current_identity)]
