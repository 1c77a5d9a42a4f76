"""The request body limits, enforced while the body is read.

A declared ``Content-Length`` above the limit is refused before the app runs.
A chunked body (or one that lies about its length) is counted as it arrives,
and reading stops at the limit: no more than the limit plus one received
chunk is ever held, whatever the client sends. The whole body must arrive
within ``body_timeout`` seconds of the app's first read, so a client that
trickles a body cannot hold a connection for long.
"""

from __future__ import annotations

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyplane.web.envelope import error_response, request_id_of

MAX_BODY_BYTES = 64 * 1024
BODY_TOO_LARGE_MESSAGE = f"The request body is larger than {MAX_BODY_BYTES} bytes."


class BodyTooLarge(HTTPException):
    """Raised by ``receive`` once the body passes the limit; answered with 413."""

    def __init__(self) -> None:
        super().__init__(413, BODY_TOO_LARGE_MESSAGE, headers={"Connection": "close"})


class BodyTimedOut(HTTPException):
    """Raised by ``receive`` when the body has not arrived in time; answered with 408."""

    def __init__(self) -> None:
        super().__init__(
            408, "The request body did not arrive in time.", headers={"Connection": "close"}
        )


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
    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, body_timeout: float = 10.0
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large_response(scope)(scope, receive, send)
            return

        received = 0
        body_complete = False
        response_started = False
        deadline: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, body_complete, deadline
            if body_complete:  # later calls wait for a disconnect: no deadline
                return await receive()
            # From the first read, not from the request head: the time the app
            # spends before reading (authentication, say) is not the client's.
            if deadline is None:
                deadline = anyio.current_time() + self.body_timeout
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut() from None
            if message["type"] != "http.request":
                body_complete = True
                return message
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge()
            body_complete = not message.get("more_body", False)
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
