"""Resource exhaustion against a real ``keyplane serve`` on 127.0.0.1, no proxy in front.

Oversize bodies (declared and chunked), huge headers, half-sent requests and a
burst of logins: each is refused or bounded, memory stays bounded, and the
process keeps answering ``/health/live`` throughout. Every attack is bounded
in count and time and targets loopback only.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import ServerLauncher, ServerProcess, Workspace

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MiB = 1024 * 1024
# Far above what a bounded process needs, far below what reading the attack would cost.
MEMORY_HEADROOM = 48 * MiB
ARGON2_MEMORY = 19456 * 1024  # KEYPLANE_ARGON2_MEMORY_KIB in the functional tests
IO_TIMEOUT = 10.0


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class LivenessProbe:
    """Polls /health/live from another thread while an attack runs."""

    base_url: str
    pid: int
    answers: list[int] = field(default_factory=list)
    peak_rss: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self.answers.append(http.get("/health/live").status_code)
                    self.answered.set()
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.peak_rss = max(self.peak_rss, rss(self.pid))
                self.stop.wait(0.05)


@contextmanager
def alive_throughout(server: ServerProcess) -> Iterator[LivenessProbe]:
    probe = LivenessProbe(server.base_url, server.process.pid)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    assert probe.answered.wait(IO_TIMEOUT), "the server did not answer before the attack"
    try:
        yield probe
    finally:
        probe.stop.set()
        thread.join(timeout=IO_TIMEOUT)
    # And once more after it: still alive.
    probe.answers.append(httpx.get(f"{server.base_url}/health/live", timeout=5.0).status_code)
    probe.peak_rss = max(probe.peak_rss, rss(server.process.pid))
    assert not probe.failures, probe.failures[:3]
    assert probe.answers, "the probe never got an answer"
    assert set(probe.answers) == {200}, probe.answers
    # A regression guard, not a speed claim: the bug stalled everything for tens of seconds.
    assert probe.slowest < 3.0, probe.slowest


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed), read until complete or closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def send_until_answered(sock: socket.socket, head: bytes, pieces: Iterator[bytes]) -> int:
    """Send the head, then pieces until the server answers or stops reading; bytes sent."""
    sock.sendall(head)
    sent = 0
    for piece in pieces:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            break
        sent += len(piece)
    return sent


def assert_envelope(
    status: int, headers: dict[str, str], body: bytes, want: int, reason: str
) -> None:
    assert status == want, body
    error = json.loads(body)["error"]
    assert error["reason"] == reason, error
    assert error["request_id"] == headers["x-request-id"]
    assert headers["cache-control"] == "no-store"


@pytest.fixture
def server(workspace: Workspace, launcher: ServerLauncher) -> ServerProcess:
    workspace.env_overrides.update(
        {
            "KEYPLANE_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "KEYPLANE_BODY_TIMEOUT": str(BODY_TIMEOUT),
        }
    )
    return warmed_up(launcher.start())


@pytest.fixture
def roomy_server(launcher: ServerLauncher) -> ServerProcess:
    """The default header and body timeouts: a burst that keeps every core busy
    must not turn into 408s because a body waited a second for the event loop."""
    return warmed_up(launcher.start())


def warmed_up(started: ServerProcess) -> ServerProcess:
    with httpx.Client(base_url=started.base_url, timeout=5.0) as http:
        for _ in range(20):  # warm up, so that the baseline memory is the working size
            assert http.get("/health/live").status_code == 200
            http.post("/auth/login", json={"username": "nobody", "password": "x"})
    return started


def test_chunked_body_is_cut_at_the_limit(server: ServerProcess) -> None:
    baseline = rss(server.process.pid)
    piece = b"a" * 65536
    with alive_throughout(server) as probe:
        for _ in range(3):
            with connect(server) as sock:
                head = (
                    b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(4096))  # 256 MiB
                sent = send_until_answered(sock, head, chunks)
                status, headers, body = read_response(sock)
            assert_envelope(status, headers, body, 413, "BODY_TOO_LARGE")
            assert sent < 64 * MiB, "the server kept reading far past the limit"
    assert probe.peak_rss - baseline < MEMORY_HEADROOM


def test_declared_oversize_body_is_refused_without_reading_it(server: ServerProcess) -> None:
    with alive_throughout(server), connect(server) as sock:
        head = (
            b"POST /v1.0/accesskeys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
        )
        sent = send_until_answered(sock, head, (b"a" * 65536 for _ in range(1024)))
        status, headers, body = read_response(sock)
    assert_envelope(status, headers, body, 413, "BODY_TOO_LARGE")
    assert sent < 64 * MiB


def test_huge_header_is_431_and_bounded(server: ServerProcess) -> None:
    baseline = rss(server.process.pid)
    with alive_throughout(server) as probe:
        for _ in range(3):
            with connect(server) as sock:
                head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                sent = send_until_answered(sock, head, (b"a" * 65536 for _ in range(1024)))
                status, headers, body = read_response(sock)
            assert_envelope(status, headers, body, 431, "HEADERS_TOO_LARGE")
            assert sent < 16 * MiB
    assert probe.peak_rss - baseline < MEMORY_HEADROOM


def test_many_headers_are_431_too(server: ServerProcess) -> None:
    with connect(server) as sock:
        head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        lines = (b"X-H%d: %s\r\n" % (index, b"v" * 100) for index in range(100_000))
        send_until_answered(sock, head, lines)
        status, headers, body = read_response(sock)
    assert_envelope(status, headers, body, 431, "HEADERS_TOO_LARGE")


def _head(request_line: bytes, filler: list[bytes], tail: bytes = b"") -> bytes:
    return request_line + b"Host: 127.0.0.1\r\n" + b"".join(filler) + tail + b"\r\n"


LOGIN = b"POST /auth/login HTTP/1.1\r\n"
LOGIN_BODY = b'{"username": "nobody", "password": "x"}'
ONE_WRITE = {
    "one-header": _head(b"GET /health/live HTTP/1.1\r\n", [b"X-Big: " + b"a" * 40_000 + b"\r\n"]),
    "many-headers": _head(
        b"GET /health/live HTTP/1.1\r\n", [b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(400)]
    ),
    "long-url": _head(b"GET /health/live?" + b"q" * 40_000 + b" HTTP/1.1\r\n", []),
    "with-a-body": _head(
        LOGIN,
        [b"X-Big: " + b"a" * 40_000 + b"\r\n"],
        b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(LOGIN_BODY),
    )
    + LOGIN_BODY,
    "behind-a-request": _head(b"GET /health/live HTTP/1.1\r\n", [])
    + _head(b"GET /health/live HTTP/1.1\r\n", [b"X-Big: " + b"a" * 40_000 + b"\r\n"]),
}


@pytest.mark.parametrize("sent", ONE_WRITE.values(), ids=ONE_WRITE.keys())
def test_a_head_over_the_limit_that_arrives_in_one_read_is_431(
    server: ServerProcess, sent: bytes
) -> None:
    """A head that is whole in one read is measured too, however its bytes are spread."""
    with connect(server) as sock:
        sock.sendall(sent)  # one write: on loopback, one read of the server
        responses = []
        while True:
            status, headers, body = read_response(sock)
            responses.append(status)
            if status != 200:
                break
    assert responses[-1] == 431, responses
    assert_envelope(status, headers, body, 431, "HEADERS_TOO_LARGE")
    # A pipelined request before it may or may not be answered first: the
    # connection is closed as soon as the large head is seen.
    assert responses[:-1] in ([], [200])


def test_a_head_under_the_limit_in_one_read_is_answered(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(
            _head(b"GET /health/live HTTP/1.1\r\n", [b"X-Big: " + b"a" * 30_000 + b"\r\n"])
        )
        status, _, body = read_response(sock)
    assert status == 200, body


def test_half_sent_requests_are_closed_after_the_header_timeout(server: ServerProcess) -> None:
    sockets: list[socket.socket] = []
    try:
        with alive_throughout(server):
            for index in range(200):
                sock = connect(server)
                # Every other one sends nothing at all; the rest stop mid-head.
                if index % 2:
                    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                sockets.append(sock)
            deadline = time.monotonic() + HEADER_TIMEOUT + IO_TIMEOUT
            for sock in sockets:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                assert sock.recv(1024) == b"", "a half-sent request got an answer"
            # A regression guard: without the timeout they stayed open indefinitely.
            assert time.monotonic() < deadline
    finally:
        for sock in sockets:
            sock.close()


def test_trickled_bodies_are_408_after_the_body_timeout(server: ServerProcess) -> None:
    sockets: list[socket.socket] = []
    try:
        with alive_throughout(server):
            for _ in range(50):
                sock = connect(server)
                sock.sendall(
                    b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                    b'{"username": "'
                )
                sockets.append(sock)
            deadline = time.monotonic() + BODY_TIMEOUT + IO_TIMEOUT
            for sock in sockets:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                status, headers, body = read_response(sock)
                assert_envelope(status, headers, body, 408, "BODY_TIMEOUT")
                assert sock.recv(1024) == b"", "the connection stays open"
    finally:
        for sock in sockets:
            sock.close()


def test_keep_alive_connection_is_not_cut_while_active(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5.0) as http:
        started = time.monotonic()
        while time.monotonic() - started < HEADER_TIMEOUT * 2.5:
            assert http.get("/health/live").status_code == 200


def test_burst_of_logins_is_answered_and_bounded(roomy_server: ServerProcess) -> None:
    server = roomy_server

    def attempt(index: int) -> int:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
            body = {"username": f"burst-{index}", "password": "wrong-" + str(index)}
            return http.post("/auth/login", json=body).status_code

    def burst(count: int) -> list[int]:
        with ThreadPoolExecutor(max_workers=40) as pool:
            return list(pool.map(attempt, range(count)))

    baseline = rss(server.process.pid)
    with alive_throughout(server) as probe:
        statuses = burst(120)
    assert set(statuses) <= {400, 401, 429}, statuses  # a refusal, never an error
    # At most KEYPLANE_PASSWORD_HASH_CONCURRENCY (the CPU count less one) hashes run at
    # once, each with its argon2 memory. glibc keeps a freed argon2 buffer in
    # each of its per-thread arenas (at most 8 per CPU), so the working size
    # settles at up to that many buffers; 120 hashes at once would need 120.
    cpus = os.cpu_count() or 1
    bound = (8 * cpus + cpus) * ARGON2_MEMORY + MEMORY_HEADROOM
    assert probe.peak_rss - baseline < bound, (probe.peak_rss - baseline) // MiB


def test_connections_beyond_the_limit_get_503_envelope(
    workspace: Workspace, launcher: ServerLauncher
) -> None:
    workspace.env_overrides.update({"KEYPLANE_MAX_CONNECTIONS": "20"})
    server = launcher.start()
    held = [connect(server) for _ in range(20)]
    try:
        with connect(server) as extra:
            extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = read_response(extra)
            assert_envelope(status, headers, body, 503, "UNAVAILABLE")
            assert headers["connection"] == "close"
    finally:
        for sock in held:
            sock.close()
    with httpx.Client(base_url=server.base_url, timeout=5.0) as http:
        for _ in range(50):  # the server notices the closed connections as they go
            if http.get("/health/live").status_code == 200:
                break
        else:
            pytest.fail("the server did not recover after the connections closed")


def test_limits_hold_in_every_worker_process(
    workspace: Workspace, launcher: ServerLauncher
) -> None:
    workspace.env_overrides.update({"KEYPLANE_MAX_HEADER_BYTES": "2048"})
    server = launcher.start("--workers", "2")
    for _ in range(6):  # new connections, spread over both workers by the kernel
        with connect(server) as sock:
            head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            send_until_answered(sock, head, (b"a" * 1024 for _ in range(16)))  # < the default
            status, headers, body = read_response(sock)
        assert_envelope(status, headers, body, 431, "HEADERS_TOO_LARGE")
    with httpx.Client(base_url=server.base_url, timeout=5.0) as http:
        assert http.get("/health/live", headers={"X-Fine": "a" * 1024}).status_code == 200


# --- TLS -------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_serve_over_tls_with_hsts(
    workspace: Workspace, launcher: ServerLauncher, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    server = launcher.start("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), wait=False)
    url = f"https://127.0.0.1:{server.port}"
    trusted = ssl.create_default_context(cafile=str(cert))
    response = _first_answer(lambda: httpx.get(f"{url}/health/live", verify=trusted, timeout=2))
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    refused = httpx.get(f"{url}/v1.0/customer", verify=trusted, timeout=5)
    assert refused.status_code == 401
    assert refused.headers["strict-transport-security"] == "max-age=31536000"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/health/live", timeout=5)
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is not accepted
        httpx.get(f"{url}/health/live", timeout=5)


def test_plain_http_has_no_hsts(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/health/live", timeout=5)
    assert "strict-transport-security" not in response.headers


def _first_answer(request: Callable[[], httpx.Response]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return request()
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_ssl_keyfile_without_certfile_is_a_usage_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, key = self_signed(tmp_path)
    result = workspace.run("serve", "--ssl-keyfile", str(key))
    assert result.returncode == 2, result.stderr
    assert "--ssl-certfile" in result.stderr
