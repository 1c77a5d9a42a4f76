"""The headers RequestContextMiddleware puts on every response."""

from __future__ import annotations

import re
import subprocess
import sys

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyplane.web.middleware import RequestContextMiddleware, new_request_id


def _app(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    async def app(scope: Scope, _receive: Receive, send: Send) -> None:
        scope["state"]["response_headers"] = {"RateLimit-Limit": "10", "RateLimit-Remaining": "9"}
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _response_headers(
    app_headers: list[tuple[bytes, bytes]], *, scheme: str = "http"
) -> list[tuple[bytes, bytes]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "scheme": scheme,
        "query_string": b"",
        "headers": [(b"x-request-id", b"req-1")],
    }
    await RequestContextMiddleware(_app(app_headers))(scope, receive, send)
    headers: list[tuple[bytes, bytes]] = sent[0]["headers"]
    return headers


async def test_every_response_gets_the_request_id_and_security_headers() -> None:
    headers = await _response_headers([(b"content-type", b"application/json")])
    assert headers == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"req-1"),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"ratelimit-limit", b"10"),
        (b"ratelimit-remaining", b"9"),
    ]


async def test_keyplane_headers_replace_the_apps_and_the_apps_limits_are_kept() -> None:
    headers = await _response_headers(
        [
            (b"cache-control", b"max-age=3600"),
            (b"x-request-id", b"forged"),
            (b"ratelimit-limit", b"5"),
            (b"cache-control", b"public"),
        ],
        scheme="https",
    )
    assert [value for name, value in headers if name == b"cache-control"] == [b"no-store"]
    assert [value for name, value in headers if name == b"x-request-id"] == [b"req-1"]
    assert [value for name, value in headers if name == b"ratelimit-limit"] == [b"5"]
    assert (b"ratelimit-remaining", b"9") in headers
    assert (b"strict-transport-security", b"max-age=31536000") in headers


# A fresh interpreter forks: the test process itself runs threads (pytest-xdist).
_FORKED_WORKER = """
import os
from keyplane.web.middleware import new_request_id
read, write = os.pipe()
if os.fork() == 0:
    os.write(write, new_request_id().encode())
    os._exit(0)
os.wait()
print(os.read(read, 64).decode(), new_request_id())
"""


def test_request_ids_are_32_hex_digits_and_differ_in_a_forked_worker() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    printed = subprocess.run(
        [sys.executable, "-c", _FORKED_WORKER], capture_output=True, text=True, check=True
    ).stdout
    in_child, in_parent = printed.split()
    assert re.fullmatch(r"[0-9a-f]{32}", in_child)
    assert in_child != in_parent
