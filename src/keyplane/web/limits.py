"""The request body limit, enforced while the body is read.

A declared ``Content-Length`` above the limit is refused before the app runs.
A chunked body (or one that lies about its length) is counted as it arrives,
and reading stops at the limit: no more than the limit plus one received
chunk is ever held, whatever the client sends.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyplane.web.envelope import error_response, request_id_of

MAX_BODY_BYTES = 64 * 1024
BODY_TOO_LARGE_MESSAGE = f"The request body is larger than {MAX_BODY_BYTES} bytes."


class BodyTooLarge(HTTPException):
    """Raised by ``receive`` once the body passes the limit; answered with 413."""

    def __init__(self) -> None:
        super().__init__(413, BODY_TOO_LARGE_MESSAGE, headers={"Connection": "close"})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _too_large_response(scope: Scope) -> ASGIApp:
    return error_response(
        "INVALID_ARGUMENT",
        "BODY_TOO_LARGE",
        BODY_TOO_LARGE_MESSAGE,
        request_id_of(scope),
        http_status=413,
        # The rest of the body is not read: the connection cannot be reused.
        headers={"Connection": "close"},
    )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large_response(scope)(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Only if nothing handled it on the way (it is an HTTPException, so
            # the app's handler normally answers in the envelope first).
            if response_started:
                raise
            await _too_large_response(scope)(scope, receive, send)
