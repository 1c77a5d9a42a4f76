"""The shipped nginx recipe for several replicas, run through the real nginx.

- A write (POST, PUT, DELETE) is sent to one replica only, even when that
  replica dies before answering; a read may be retried on the next one.
- The X-Forwarded-For that reaches keyplane is the client's address as nginx
  saw it, whatever the client wrote in that header.
"""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.servers import LOOPBACK, NginxServer

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "examples" / "nginx" / "keyplane-replicas.conf"


@dataclass
class Replica:
    """A stand-in replica on a bound loopback socket: records each request head,
    then answers 200, or dies without answering (``answer=False``)."""

    answer: bool
    heads: list[dict[str, str]] = field(default_factory=list)
    server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> int:
        replica = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline().decode("latin-1").strip()
                head = {":request": request_line}
                while (line := self.rfile.readline().decode("latin-1").strip()) != "":
                    name, _, value = line.partition(":")
                    head[name.strip().lower()] = value.strip()
                length = int(head.get("content-length", "0"))
                if length:
                    self.rfile.read(length)
                replica.heads.append(head)
                if replica.answer:
                    body = b'{"ok": true}'
                    self.wfile.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port: int = self.server.server_address[1]
        return port

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def recipe_for_test(listen_port: int, upstreams: list[int], logs: Path) -> str:
    """The shipped file with only its addresses, TLS and log paths changed."""
    text = RECIPE.read_text()
    changes = [
        ("    listen 443 ssl;\n", f"    listen {LOOPBACK}:{listen_port};\n"),
        ("    ssl_certificate     /etc/ssl/keys.example.com/fullchain.pem;\n", ""),
        ("    ssl_certificate_key /etc/ssl/keys.example.com/privkey.pem;\n", ""),
        ("/var/log/nginx/keyplane.access.log", str(logs / "access.log")),
        ("/var/log/nginx/keyplane.error.log", str(logs / "error.log")),
        ("    server 127.0.0.1:8081 ", f"    server {LOOPBACK}:{upstreams[0]} "),
        ("    server 127.0.0.1:8082 ", f"    server {LOOPBACK}:{upstreams[1]} "),
    ]
    for old, new in changes:
        assert text.count(old) == 1, f"the recipe no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def front(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Replica]]]:
    answer: bool = request.param
    replicas = [Replica(answer), Replica(answer)]
    ports = [replica.start() for replica in replicas]
    nginx = NginxServer(upstreams=[])
    nginx.site = recipe_for_test(nginx.port, ports, tmp_path)
    try:
        nginx.start()
        yield nginx.url, replicas
    finally:
        nginx.destroy()
        for replica in replicas:
            replica.stop()


@pytest.mark.parametrize("front", [False], indirect=True)
@pytest.mark.parametrize(("method", "sent"), [("GET", 2), ("PUT", 1), ("DELETE", 1), ("POST", 1)])
def test_writes_are_never_sent_to_a_second_replica(
    front: tuple[str, list[Replica]], method: str, sent: int
) -> None:
    url, replicas = front
    response = httpx.request(
        method, f"{url}/v1.0/accesskeys/00000000-0000-4000-8000-000000000001", timeout=20
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["status"], error["reason"]) == ("UNAVAILABLE", "UNAVAILABLE")
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Retry-After"] == "1"
    heads = [head for replica in replicas for head in replica.heads]
    assert [head[":request"].split()[0] for head in heads] == [method] * sent


@pytest.mark.parametrize("front", [True], indirect=True)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_client_cannot_choose_the_forwarded_address(
    front: tuple[str, list[Replica]], method: str
) -> None:
    url, replicas = front
    response = httpx.request(
        method,
        f"{url}/auth/login",
        headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    (head,) = [head for replica in replicas for head in replica.heads]
    assert head["x-forwarded-for"] == LOOPBACK  # nginx's peer: this test


def test_the_deployment_guide_shows_the_shipped_recipe() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    step = guide.split("### 7. nginx in front", 1)[1]
    block = re.search(r"```nginx\n(.*?)```", step, re.DOTALL)
    assert block is not None
    assert block.group(1) == RECIPE.read_text()


@pytest.mark.parametrize("front", [True], indirect=True)
@pytest.mark.parametrize(
    "path", ["/metrics", "/metrics?format=text", "//metrics", "/%6Detrics", "/./metrics"]
)
def test_metrics_are_denied_and_never_reach_a_replica(
    front: tuple[str, list[Replica]], path: str
) -> None:
    url, replicas = front
    response = httpx.get(f"{url}{path}", timeout=20)
    assert response.status_code == 403
    assert [head for replica in replicas for head in replica.heads] == []
    assert httpx.get(f"{url}/health/live", timeout=20).status_code == 200
