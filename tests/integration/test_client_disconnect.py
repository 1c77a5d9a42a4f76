"""A client that goes away while its body is read is an ordinary, quiet event.

The app is driven at the ASGI level, as the server drives it: the body's first
chunk arrives, then ``http.disconnect``. Nothing is answered (nobody is there),
nothing is logged as an error, and the access line says 499 ("client closed
request"), never 500.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message

from keyplane.services.container import Services
from keyplane.settings import Settings
from keyplane.web.app import create_app
from tests.integration.conftest import KEYS, Tenant
from tests.logcapture import captured_logging


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    with captured_logging("json") as buffer:
        yield buffer


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40_000),
        "server": ("testserver", 80),
    }


@pytest.mark.parametrize("authenticated", [True, False], ids=["api", "login"])
async def test_a_client_gone_mid_body_is_logged_quietly_as_499(
    settings: Settings,
    services: Services,
    tenant: Tenant,
    log_output: io.StringIO,
    authenticated: bool,
) -> None:
    app = create_app(settings, services=services)
    path, headers = (KEYS, [(b"authorization", f"Bearer {tenant.key}".encode())])
    if not authenticated:
        path, headers = "/auth/login", []
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", b"100"))
    arriving: list[Message] = [
        {"type": "http.request", "body": b'{"name": "half', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(path, headers), receive, send)

    assert sent == []  # nobody to answer
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    assert not [line for line in lines if line.get("level") in ("error", "critical")], lines
    assert "unhandled_error" not in log_output.getvalue()
    assert "Traceback" not in log_output.getvalue()
    (access,) = [line for line in lines if line.get("logger") == "keyplane.access"]
    assert (access["event"], access["path"], access["status"]) == ("request", path, 499)
    assert access["level"] == "info"
