"""An ASGI middleware: every request is verified by keyplane before the app sees it."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from keyplane.gateway._verifier import KeyplaneRefused, KeyplaneVerifier, Verdict, scope_headers

SCOPE_KEY = "keyplane_identity"  # scope["state"][SCOPE_KEY]: the VerifiedIdentity
IDENTITY_PREFIX = b"x-keyplane-"
_PREFIX_LENGTH = len(IDENTITY_PREFIX)


async def send_refusal(refusal: KeyplaneRefused, send: Send) -> None:
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


def request_parts(scope: Scope) -> tuple[str | None, str | None]:
    """The ``Authorization`` header (the first, as keyplane reads it) and every
    ``Cookie`` header joined with ``"; "`` (as keyplane joins them)."""
    authorization: str | None = None
    cookies: list[bytes] = []
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif lowered == b"cookie":
            cookies.append(value)
    cookie = b"; ".join(cookies).decode("latin-1") if cookies else None
    return authorization, cookie


def is_identity_header(name: bytes) -> bool:
    """``X-Keyplane-*`` in any case: set by keyplane's answer alone, never by a client."""
    return name[:_PREFIX_LENGTH].lower() == IDENTITY_PREFIX


def without_forged_identity(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without any ``X-Keyplane-*`` header, whatever its case."""
    return [(name, value) for name, value in headers if not is_identity_header(name)]


def with_identity(
    headers: Iterable[tuple[bytes, bytes]], verdict: Verdict
) -> list[tuple[bytes, bytes]]:
    """``headers`` with keyplane's identity headers in place of any a client sent."""
    return [*without_forged_identity(headers), *_identity_headers(verdict)]


def without_credentials(scope: Scope, verdict: Verdict) -> Scope:
    """The scope the app sees: no credential, keyplane's identity headers, nothing forged."""
    headers: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in (b"cookie", b"authorization"):
            continue  # replaced by keyplane's credential-free forms below
        headers.append((name, value))
    if verdict.upstream_cookie:
        headers.append((b"cookie", verdict.upstream_cookie.encode("latin-1")))
    if verdict.upstream_authorization:
        headers.append((b"authorization", verdict.upstream_authorization.encode("latin-1")))
    headers = with_identity(headers, verdict)
    changed = dict(scope, headers=headers)
    if verdict.upstream_query is not None:
        changed["query_string"] = verdict.upstream_query.encode("latin-1")
    changed["state"] = {**scope.get("state", {}), SCOPE_KEY: verdict.identity}
    return changed


def _identity_headers(verdict: Verdict) -> Iterable[tuple[bytes, bytes]]:
    identity = verdict.identity
    yield b"x-keyplane-customer-id", identity.customer_id.encode()
    yield b"x-keyplane-identity-type", identity.identity_type.encode()
    yield b"x-keyplane-identity-id", identity.identity_id.encode()
    yield b"x-keyplane-permission", str(identity.permission).encode()
    if identity.token_prefix:
        yield b"x-keyplane-token-prefix", identity.token_prefix.encode()


class KeyplaneAuthMiddleware:
    """Refuses with keyplane's own answer, or passes the request on without credentials.

    ``exempt`` paths (health checks, say) pass without verification, and
    WebSocket connections are not verified here; either way, no client-sent
    ``X-Keyplane-*`` header reaches the app.
    """

    def __init__(
        self, app: ASGIApp, verifier: KeyplaneVerifier, exempt: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] in self.exempt:
            # Not verified here: passed on as it came, but for forged identity headers.
            unforged = dict(scope, headers=without_forged_identity(scope["headers"]))
            await self.app(unforged, receive, send)
            return
        authorization, cookie = request_parts(scope)
        try:
            verdict = await self.verifier.verify(
                path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
                query=scope["query_string"].decode("latin-1"),
                authorization=authorization,
                cookie=cookie,
                method=scope["method"],
                headers=scope_headers(scope["headers"]),
            )
        except KeyplaneRefused as refusal:
            await send_refusal(refusal, send)
            return
        await self.app(without_credentials(scope, verdict), receive, send)
