"""Limits on connections for clients that reach keyplane without a proxy in front.

uvicorn's httptools protocol reads a request head for as long as the client
likes and as large as the client likes, and keeps every connection open.
:class:`GuardedHttpToolsProtocol` adds three limits, from the settings:

- ``max_header_bytes``: a request line plus headers larger than this is
  answered 431 in the envelope and the connection closed, however its bytes
  arrive: counted as they are received while a head is incomplete (a head
  sent slowly, or one too large to ever complete), and measured when a head
  completes within a read that could make it too large (a head that arrived
  whole in one read, or behind a body);
- ``header_timeout``: a connection that has not sent a complete request head
  this many seconds after it opened (or after its previous response) is
  closed: half-sent requests cannot pile up;
- ``max_connections``: beyond this many open connections per process, a new
  request is answered 503 in the envelope and its connection closed.

uvicorn loads the protocol by name (``HTTP_PROTOCOL``), also in worker
processes, and each process applies the limits of its own settings with
:func:`apply_connection_limits` before it serves.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from keyplane.logs import get_logger
from keyplane.settings import Settings
from keyplane.web.envelope import envelope, error_response
from keyplane.web.middleware import SECURITY_HEADERS, new_request_id

HTTP_PROTOCOL = "keyplane.web.connections:GuardedHttpToolsProtocol"
# What the parser does not report of a head: the method, two spaces, the
# version and the line ends of the request line and of the head.
_HEAD_FRAMING = len(b"OPTIONS  HTTP/1.1\r\n\r\n")
_HEADER_FRAMING = len(b": \r\n")
log = get_logger("keyplane.server")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    max_connections: int = 1000


def apply_connection_limits(settings: Settings) -> None:
    """Set the limits of every connection this process accepts from now on."""
    GuardedHttpToolsProtocol.limits = ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
    )


def _raw_response(status: int, phrase: str, body: dict[str, Any]) -> bytes:
    """A complete response written straight to the socket (no app runs for it)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(payload)),
        **dict(SECURITY_HEADERS),
        "x-request-id": body["error"]["request_id"],
        "connection": "close",
    }
    head = f"HTTP/1.1 {status} {phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return (head + "\r\n").encode("ascii") + payload


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    request_id = new_request_id()
    response = error_response(
        "UNAVAILABLE",
        "UNAVAILABLE",
        "The server has too many open connections; retry later.",
        request_id,
        headers={
            **dict(SECURITY_HEADERS),
            "X-Request-ID": request_id,
            "Retry-After": "1",
            "Connection": "close",
        },
    )
    await response(scope, receive, send)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # received in earlier reads while the current head was incomplete
        self._read_bytes = 0  # the size of the read being parsed
        self._reading_head = False
        self._head_refused = False  # answered 431: the rest of what was received is ignored
        # When the current request head became due (the connection opened, or
        # the previous response ended); None while a request is being answered.
        self._head_since: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    # -- the header read timeout ---------------------------------------------------------
    #
    # One timer per connection, not one per request: a request only notes the
    # moment its head became due (a clock read), and the timer, when it fires,
    # closes the connection if that head is overdue or looks again when the
    # current head will be. A keep-alive connection answering thousands of
    # requests a second costs one timer every KEYPLANE_HEADER_TIMEOUT seconds.

    def _check_head(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout
        since = self._head_since
        left = timeout if since is None else since + timeout - self.loop.time()
        if left > 0:
            self._head_timer = self.loop.call_later(left, self._check_head)
            return
        log.info("request_head_timeout", client=(self.client or ("", 0))[0])
        self.transport.close()

    # -- uvicorn's protocol, with the limits added -------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over_capacity = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if over_capacity:
            log.warning(
                "too_many_connections",
                limit=self.limits.max_connections,
                client=(self.client or ("", 0))[0],
            )
            self.app = _over_capacity  # answered once its request head has arrived
        self._head_since = self.loop.time()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_refused:
            return
        self._read_bytes = len(data)
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse_large_head()

    # The parser's callbacks. Once a head is refused, those still to come for
    # bytes of the same read do nothing: no request starts, no body is kept.

    def on_message_begin(self) -> None:
        if self._head_refused:
            return
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0
        if self._head_since is None:  # a pipelined head: due from now
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        if self._head_refused:
            return
        # The head that just completed came in this read and the earlier ones
        # counted in _head_bytes: only when those could hold more than the
        # limit is it measured (a head that arrived whole in one large read).
        limit = self.limits.max_header_bytes
        if self._head_bytes + self._read_bytes > limit and self._head_size() > limit:
            self._refuse_large_head()
            return
        self._reading_head = False
        self._head_since = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._head_refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._head_refused:
            super().on_message_complete()

    def _head_size(self) -> int:
        """The request line and headers as received (give or take optional spaces)."""
        return (
            _HEAD_FRAMING
            + len(self.url)
            + sum(len(name) + len(value) + _HEADER_FRAMING for name, value in self.headers)
        )

    def on_response_complete(self) -> None:
        next_head_pending = not self.pipeline  # a pipelined request's head is complete
        super().on_response_complete()
        if next_head_pending and self._head_since is None:
            self._head_since = self.loop.time()  # the next request's head has the same time

    def _refuse_large_head(self) -> None:
        self._reading_head = False
        self._head_refused = True
        log.info("request_head_too_large", client=(self.client or ("", 0))[0])
        body = envelope(
            "INVALID_ARGUMENT",
            "HEADERS_TOO_LARGE",
            f"The request line and headers are larger than {self.limits.max_header_bytes} bytes.",
            new_request_id(),
        )
        self.transport.write(_raw_response(431, "Request Header Fields Too Large", body))
        self.transport.close()
