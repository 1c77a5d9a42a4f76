"""A FastAPI dependency: the caller's keyplane identity, or keyplane's refusal."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from keyplane.gateway._middleware import SCOPE_KEY, request_parts, with_identity
from keyplane.gateway._verifier import (
    KeyplaneRefused,
    KeyplaneVerifier,
    VerifiedIdentity,
    scope_headers,
)


class KeyplaneAuth:
    """``Depends(KeyplaneAuth(verifier))`` gives the handler a ``VerifiedIdentity``.

    Behind ``KeyplaneAuthMiddleware`` it reuses the middleware's answer; alone, it
    asks keyplane itself, and then replaces the request's ``X-Keyplane-*``
    headers, whatever their case, by keyplane's: the handler never sees one a
    client sent. A refusal raises ``KeyplaneRefused``: install
    ``refusal_handler`` for it (``app.add_exception_handler``) so the client gets
    keyplane's status, envelope and headers unchanged.
    """

    def __init__(self, verifier: KeyplaneVerifier) -> None:
        self.verifier = verifier

    async def __call__(self, request: Request) -> VerifiedIdentity:
        state = request.scope.setdefault("state", {})
        known = state.get(SCOPE_KEY)
        if isinstance(known, VerifiedIdentity):
            return known
        authorization, cookie = request_parts(request.scope)
        verdict = await self.verifier.verify(
            path=request.url.path,
            query=request.scope["query_string"].decode("latin-1"),
            authorization=authorization,
            cookie=cookie,
            method=request.method,
            headers=scope_headers(request.scope["headers"]),
        )
        headers = request.scope["headers"]
        identified = with_identity(headers, verdict)
        if isinstance(headers, list):
            headers[:] = identified  # the list Starlette's cached Headers reads too
        else:
            request.scope["headers"] = identified
        state[SCOPE_KEY] = verdict.identity
        return verdict.identity


async def refusal_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KeyplaneRefused)
    headers = {name: value for name, value in exc.headers if name.lower() != "content-type"}
    media_type = dict(exc.headers).get("content-type", "application/json")
    return Response(exc.body, status_code=exc.status, headers=headers, media_type=media_type)
