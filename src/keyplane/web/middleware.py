"""Request id, security headers, the access log, and the last line of defence.

Also the one place where the client's ``Cookie`` header is read: it is
replaced, before anything else sees the request, by one holding only the
credential cookies (``keyplane.web.credentials.canonical_cookie_header``,
linear). Starlette's cookie parser, which FastAPI runs on every request,
then only ever sees that short, plain header.

A client that closes its connection while its body is read is no error of
the server's: its request is logged as an ordinary access line with status
499 (nginx's "client closed request"), without a traceback, and nothing is
answered.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyplane.logs import get_logger
from keyplane.web.credentials import canonical_cookie_header, cookie_header
from keyplane.web.envelope import internal_error_response

MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)
# Sent on every response to a request that came over HTTPS (directly, or
# through a trusted proxy that says so in X-Forwarded-Proto): one year.
HSTS = "max-age=31536000"

SECURITY_HEADER_BYTES = tuple(
    (name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS
)
_HSTS = (b"strict-transport-security", HSTS.encode())

# nginx's code for "the client closed the connection before the answer": no
# answer was sent, and the server did nothing wrong.
CLIENT_CLOSED = 499

access_log = get_logger("keyplane.access")
error_log = get_logger("keyplane.error")


def new_request_id() -> str:
    """32 hex digits, unique (128 bits of the ``random`` module, reseeded in
    every forked worker): a request id names a request, it guards nothing.
    ``os.urandom`` costs a system call per request, 6% of a verification."""
    return f"{random.getrandbits(128):032x}"


def sane_request_id(value: bytes) -> str | None:
    """An incoming ``X-Request-ID`` value when it is safe to reuse, else ``None``."""
    if len(value) > MAX_REQUEST_ID_LENGTH:
        return None
    text: str = value.decode("latin-1")
    if _SANE_REQUEST_ID.fullmatch(text) and "vb_" not in text and "eyJ" not in text:
        return text
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return sane_request_id(value)  # the first one only
    return None


def _keep_only_credential_cookies(scope: Scope) -> None:
    headers = scope.get("headers") or []
    cookie = cookie_header(headers)
    if cookie is None:
        return
    canonical = canonical_cookie_header(cookie)
    kept = [(name, value) for name, value in headers if name != b"cookie"]
    if canonical:
        kept.append((b"cookie", canonical.encode("latin-1")))
    scope["headers"] = kept


def _add_headers(
    message: Message, ours: list[tuple[bytes, bytes]], defaults: dict[str, str]
) -> None:
    """Sets ``ours`` on a response start, replacing the app's, and ``defaults``
    where the app set none: in one pass over the app's headers (ASGI names are
    lower case), where ``MutableHeaders`` scans them again for every name."""
    headers = message["headers"] = list(message.get("headers", ()))
    present = {name for name, _ in headers}
    for name, value in ours:
        if name in present:
            headers[:] = [(other, kept) for other, kept in headers if other != name]
        headers.append((name, value))
    for default_name, default_value in defaults.items():
        key = default_name.lower().encode("latin-1")
        if key not in present:
            headers.append((key, default_value.encode("latin-1")))


class RequestContextMiddleware:
    """Outermost keyplane middleware: every response passes through here.

    ``database_budget`` (``Database.one_budget``) gives the whole request one
    database timeout: without it each statement would have the whole timeout,
    and a request that waits for a connection, then a read, then a write could
    take several.
    """

    def __init__(
        self,
        app: ASGIApp,
        database_budget: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self.app = app
        self._database_budget = database_budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _keep_only_credential_cookies(scope)
        request_id = _incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                ours = [(b"x-request-id", request_id.encode()), *SECURITY_HEADER_BYTES]
                if scope.get("scheme") == "https":
                    ours.append(_HSTS)
                _add_headers(message, ours, scope["state"].get("response_headers", {}))
            await send(message)

        try:
            with self._database_budget():
                await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            # The client went away while its body was read: nobody to answer, no
            # fault of the server's; the access line below says so with its status.
            if not response_started:
                status = CLIENT_CLOSED
        except Exception:
            error_log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if not response_started:
                await internal_error_response(request_id)(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                client=(scope.get("client") or ("", 0))[0],
            )
            structlog.contextvars.reset_contextvars(**tokens)
