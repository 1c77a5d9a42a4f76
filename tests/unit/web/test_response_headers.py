"""The headers RequestContextMiddleware puts on every response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyplane.web.middleware import RequestContextMiddleware


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
    assert dict(headers)[b"cache-control"] == b"no-store"
    assert [value for name, value in headers if name == b"cache-control"] == [b"no-store"]
    assert [value for name, value in headers if name == b"x-request-id"] == [b"req-1"]
    assert [value for name, value in headers if name == b"ratelimit-limit"] == [b"5"]
    assert (b"ratelimit-remaining", b"9") in headers
    assert (b"strict-transport-security", b"max-age=31536000") in headers
