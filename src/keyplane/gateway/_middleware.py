"""An ASGI middleware: every request is verified by keyplane before the app sees it."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from keyplane.gateway._verifier import KeyplaneRefused, KeyplaneVerifier, Verdict

SCOPE_KEY = "keyplane_identity"  # scope["state"][SCOPE_KEY]: the VerifiedIdentity


async def send_refusal(refusal: KeyplaneRefused, send: Send) -> None:
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


def request_parts(scope: Scope) -> tuple[str | None, str | None]:
    authorization = cookie = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookie = value.decode("latin-1")
    return authorization, cookie


def without_credentials(scope: Scope, verdict: Verdict) -> Scope:
    """The scope the app sees: no credential, keyplane's identity headers, nothing forged."""
    headers: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        if name.startswith(b"x-keyplane-") or name == b"cookie":
            continue
        if name == b"authorization" and value.lower().lstrip().startswith(b"bearer "):
            continue  # a Bearer value is a keyplane credential
        headers.append((name, value))
    if verdict.upstream_cookie:
        headers.append((b"cookie", verdict.upstream_cookie.encode("latin-1")))
    headers.extend(_identity_headers(verdict))
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

    ``exempt`` paths (health checks, say) pass without verification.
    """

    def __init__(
        self, app: ASGIApp, verifier: KeyplaneVerifier, exempt: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        authorization, cookie = request_parts(scope)
        try:
            verdict = await self.verifier.verify(
                path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
                query=scope["query_string"].decode("latin-1"),
                authorization=authorization,
                cookie=cookie,
                method=scope["method"],
            )
        except KeyplaneRefused as refusal:
            await send_refusal(refusal, send)
            return
        await self.app(without_credentials(scope, verdict), receive, send)
