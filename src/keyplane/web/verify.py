"""``GET /auth/verify``: may this request pass? Asked by a gateway for every request.

It is the hot path of a deployment, so it is a small ASGI middleware that
answers before the framework sees the request: no routing, no dependency
injection, no per-request log line. The rules are not repeated here: the
credential is found by ``find_credential`` and checked by
``AuthService.authenticate``, exactly as for the API's own endpoints
(expiry, deletion, deleted customer, rate limits, failure budget).

Where the credential is read:

- ``Authorization`` and ``Cookie`` of the request itself (gateways pass them on);
- the query of the *original* request, from ``X-Original-URI`` (nginx) or
  ``X-Forwarded-Uri`` (Traefik), else from the request's own path below
  ``/auth/verify/`` (Envoy's ``path_prefix``), else its own query.

Any method is answered (Envoy forwards the original one); no body is read.
A restricted key's scopes are checked against the original method
(``X-Original-Method``, ``X-Forwarded-Method``, or Envoy's own), the
original path and query, and the method override and ``Content-Type`` headers
the gateway passes on (``scopes.HEADER_NAMES``); when the method or path is
unknown, a restricted key is refused (403).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from keyplane.domain.tokens import display_prefix
from keyplane.errors import AuthenticationRequired, KeyplaneError
from keyplane.logs import get_logger
from keyplane.services.auth import AuthService
from keyplane.web.credentials import find_credential, join_cookie_headers, parse_cookies
from keyplane.web.deps import RATELIMIT_HEADERS, SCOPE_HEADERS, ratelimit_values
from keyplane.web.envelope import HTTP_STATUS, INTERNAL_MESSAGE, envelope, error_headers
from keyplane.web.middleware import SECURITY_HEADER_BYTES, new_request_id, sane_request_id
from keyplane.web.upstream import (
    authorization_without_credentials,
    cookie_without_credentials,
    uri_without_credentials,
)

VERIFY_PATH = "/auth/verify"
_VERIFY_PREFIX = VERIFY_PATH + "/"
_JSON = (b"content-type", b"application/json")
_RATELIMIT = tuple(name.lower().encode() for name in RATELIMIT_HEADERS)

error_log = get_logger("keyplane.error")


@dataclass(slots=True)
class VerifyCounters:
    """Counted, not logged: a log line per verification would cost more than the check."""

    allowed: int = 0
    unauthenticated: int = 0
    limited: int = 0
    denied: int = 0
    failed: int = 0


@dataclass(slots=True)
class _Incoming:
    authorization: str | None = None
    cookie: str | None = None
    original_uri: str | None = None  # nginx
    forwarded_uri: str | None = None  # Traefik
    original_method: str | None = None  # nginx, with X-Original-URI
    forwarded_method: str | None = None  # Traefik, with X-Forwarded-Uri
    request_id: str | None = None
    scope_headers: tuple[tuple[str, str], ...] = ()  # method overrides, Content-Type


def _read_headers(scope: Scope) -> _Incoming:
    """Every header the verification reads, in one pass over the request's headers."""
    found = _Incoming()
    request_id: bytes | None = None
    cookies: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            if found.authorization is None:  # the first one, as for the API
                found.authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookies.append(value)  # every one, joined below as the API joins them
        elif name == b"x-original-uri":
            found.original_uri = value.decode("latin-1")
        elif name == b"x-forwarded-uri":
            found.forwarded_uri = value.decode("latin-1")
        elif name == b"x-original-method":
            found.original_method = value.decode("latin-1")
        elif name == b"x-forwarded-method":
            found.forwarded_method = value.decode("latin-1")
        elif name == b"x-request-id" and request_id is None:
            request_id = value  # the first one, as for the API
        elif name in SCOPE_HEADERS:
            found.scope_headers += ((name.decode("latin-1"), value.decode("latin-1")),)
    if request_id is not None:
        found.request_id = sane_request_id(request_id)
    found.cookie = join_cookie_headers(cookies)
    return found


def _original_uri(scope: Scope, incoming: _Incoming) -> str | None:
    if incoming.original_uri or incoming.forwarded_uri:
        return incoming.original_uri or incoming.forwarded_uri
    path: str = scope["path"]
    if path.startswith(_VERIFY_PREFIX):  # Envoy: path_prefix + the original path
        query = scope["query_string"].decode("latin-1")
        raw: bytes | None = scope.get("raw_path")
        original = (raw.decode("latin-1") if raw else path)[len(VERIFY_PATH) :]
        return f"{original}?{query}" if query else original
    return None


def _original_method(scope: Scope, incoming: _Incoming) -> str | None:
    """The original request's method, from the source the URI came from (same precedence)."""
    if incoming.original_uri:
        return incoming.original_method  # nginx
    if incoming.forwarded_uri:
        return incoming.forwarded_method  # Traefik
    if scope["path"].startswith(_VERIFY_PREFIX):
        method: str = scope["method"]  # Envoy sends the original method itself
        return method
    return None


def is_verify_path(path: str) -> bool:
    return path == VERIFY_PATH or path.startswith(_VERIFY_PREFIX)


class GatewayVerification:
    """Answers ``/auth/verify`` (and ``/auth/verify/...``); passes everything else on."""

    def __init__(self, app: ASGIApp, auth: AuthService) -> None:
        self.app = app
        self.auth = auth
        self.counters = VerifyCounters()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_verify_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        incoming = _read_headers(scope)
        request_id = incoming.request_id or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        try:
            status, headers, body = await self._verify(scope, incoming, request_id)
        except Exception:  # the last line of defence, as for the API
            self.counters.failed += 1
            error_log.exception("unhandled_error", path=VERIFY_PATH, request_id=request_id)
            status, headers = 500, [_JSON]
            body = _envelope_bytes("INTERNAL", "INTERNAL", INTERNAL_MESSAGE, request_id)
        headers.append((b"x-request-id", request_id.encode()))
        headers.extend(SECURITY_HEADER_BYTES)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _verify(
        self, scope: Scope, incoming: _Incoming, request_id: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        original = _original_uri(scope, incoming)
        if original is not None:
            query_string = original.partition("?")[2]
        else:
            query_string = scope["query_string"].decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        cookies = parse_cookies(incoming.cookie)
        client = scope.get("client")
        try:
            credential = find_credential(cookies, query, incoming.authorization)
            if credential is None:
                self.auth.refused_without_credential()
                raise AuthenticationRequired()
            identity, decision = await self.auth.authenticate(
                credential,
                client=client[0] if client else "",
                method=_original_method(scope, incoming),
                path=original,
                headers=incoming.scope_headers,
            )
        except KeyplaneError as exc:
            return self._refusal(exc, request_id)
        self.counters.allowed += 1
        headers = [
            (b"x-keyplane-customer-id", str(identity.customer_id).encode()),
            (b"x-keyplane-identity-type", identity.type.encode()),
            (b"x-keyplane-identity-id", str(identity.id).encode()),
            (b"x-keyplane-permission", str(identity.permission).encode()),
            (b"x-keyplane-request-id", request_id.encode()),
        ]
        if credential.kind == "accesskey":
            headers.append((b"x-keyplane-token-prefix", display_prefix(credential.value).encode()))
        if original is not None:
            cleaned = uri_without_credentials(original)
            if cleaned is not None:
                headers.append((b"x-keyplane-upstream-uri", cleaned.encode("latin-1")))
        if incoming.cookie is not None:
            kept = cookie_without_credentials(incoming.cookie)
            headers.append((b"x-keyplane-upstream-cookie", kept.encode("latin-1")))
        if incoming.authorization is not None:
            forwarded = authorization_without_credentials(incoming.authorization)
            headers.append((b"x-keyplane-upstream-authorization", forwarded.encode("latin-1")))
        limit, remaining, reset = ratelimit_values(decision)
        headers.extend(
            zip(_RATELIMIT, (limit.encode(), remaining.encode(), reset.encode()), strict=True)
        )
        return 200, headers, b""

    def _refusal(
        self, exc: KeyplaneError, request_id: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        body = _envelope_bytes(exc.status, exc.reason, exc.message, request_id)
        status = HTTP_STATUS.get(exc.status, 500)
        if status == 429:
            self.counters.limited += 1
        elif status == 401:
            self.counters.unauthenticated += 1
        elif status == 403:
            self.counters.denied += 1
        else:
            self.counters.failed += 1
        headers = [_JSON]
        headers.extend(
            (name.lower().encode(), value.encode()) for name, value in error_headers(exc).items()
        )
        # nginx's auth_request keeps only the status of a refusal: the envelope
        # travels in a header too so the gateway can answer with it unchanged.
        headers.append((b"x-keyplane-error", body))
        return status, headers, body


def _envelope_bytes(status: str, reason: str, message: str, request_id: str) -> bytes:
    return json.dumps(
        envelope(status, reason, message, request_id), ensure_ascii=True, separators=(",", ":")
    ).encode()
