"""The real server: ``keyplane serve`` in a subprocess, spoken to over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import (
    TOKEN_RE,
    WAIT_SECONDS,
    ServerLauncher,
    ServerProcess,
    Workspace,
    parse_first_start,
    stopped_ok,
)
from tests.servers import LISTENING, tcp_sockets_on_port

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, http_status: int, reason: str) -> None:
    assert response.status_code == http_status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["reason"] == reason, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


def login(http: httpx.Client, username: str, password: str) -> str:
    response = http.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == username
    token = body["token"]
    assert isinstance(token, str)
    assert token.count(".") == 2
    return token


@pytest.fixture
def bootstrap_workspace(workspace: Workspace) -> Workspace:
    workspace.env_overrides.update({"KEYPLANE_BOOTSTRAP": "true", "KEYPLANE_LOG_FORMAT": "json"})
    return workspace


def _exercise_keys(server: ServerProcess, first_token: str, jwt: str) -> dict[str, Any]:
    """Create, list, get, rename and delete a key with every credential form."""
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        created = http.post(
            "/v1.0/accesskeys",
            json={"name": "ci", "detail": "for CI", "expire": 86400},
            headers=bearer(jwt),
        )
        assert created.status_code == 200, created.text
        assert_security_headers(created)
        key = created.json()
        assert TOKEN_RE.fullmatch(key["token"])
        assert key["name"] == "ci"
        assert key["detail"] == "for CI"

        # ?token= (session in the query)
        listed = http.get("/v1.0/accesskeys", params={"token": jwt})
        assert listed.status_code == 200, listed.text
        result = listed.json()["result"]
        assert result[0]["id"] == key["id"], "newest first"
        assert key["token"] not in listed.text
        assert first_token not in listed.text

        # cookie token=<jwt>
        got = http.get(f"/v1.0/accesskeys/{key['id']}", headers={"Cookie": f"token={jwt}"})
        assert got.status_code == 200, got.text
        assert got.json()["id"] == key["id"]
        assert "token" not in got.json()

        # cookie accesskey=<the new key itself>
        renamed = http.put(
            f"/v1.0/accesskeys/{key['id']}",
            json={"name": "renamed"},
            headers={"Cookie": f"accesskey={key['token']}"},
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "renamed"
        assert renamed.json()["detail"] == ""
        assert renamed.json()["tm_update"] is not None
        assert "token" not in renamed.json()

        # The new key by ?accesskey= works before deletion.
        assert http.get("/v1.0/customer", params={"accesskey": key["token"]}).status_code == 200

        # Delete with the bootstrap key as a Bearer header.
        deleted = http.delete(f"/v1.0/accesskeys/{key['id']}", headers=bearer(first_token))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["tm_delete"] is not None

        # From that instant the deleted key is refused everywhere.
        assert_error(
            http.get("/v1.0/accesskeys", headers=bearer(key["token"])), 401, "INVALID_CREDENTIALS"
        )
        assert_error(
            http.get("/v1.0/accesskeys", params={"accesskey": key["token"]}),
            401,
            "INVALID_CREDENTIALS",
        )
        assert_error(
            http.get("/v1.0/accesskeys", headers={"Cookie": f"accesskey={key['token']}"}),
            401,
            "INVALID_CREDENTIALS",
        )
        assert_error(
            http.get(f"/v1.0/accesskeys/{key['id']}", headers=bearer(first_token)),
            409,
            "STATE_INVALID",
        )
        remaining = http.get("/v1.0/accesskeys", headers=bearer(first_token)).json()["result"]
        assert key["id"] not in [k["id"] for k in remaining]
    return key


def test_first_start_serve_and_restart(
    bootstrap_workspace: Workspace, launcher: ServerLauncher
) -> None:
    server = launcher.start()
    first = parse_first_start(server.stdout())
    assert first.username == "admin"
    # Where it listens, then the block, last: no migration line hides it.
    assert server.stdout().startswith(f"keyplane is listening on {server.base_url}\n")
    assert server.stdout().rstrip().endswith(first.block.rstrip())
    assert "Running upgrade" not in server.stderr()
    assert "created a new database" in server.stderr()
    assert first.curl_url == f"{server.base_url}/v1.0/accesskeys?accesskey={first.token}"

    # The printed curl command works as printed.
    tried = httpx.get(first.curl_url, timeout=10.0)
    assert tried.status_code == 200, tried.text
    assert_security_headers(tried)
    keys = tried.json()["result"]
    assert len(keys) == 1
    assert keys[0]["customer_id"] == first.customer_id
    assert keys[0]["token_prefix"] == first.token[:11]
    assert first.token not in tried.text

    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        assert http.get("/v1.0/accesskeys", headers=bearer(first.token)).status_code == 200
        assert_error(http.get("/v1.0/accesskeys"), 401, "AUTHENTICATION_REQUIRED")
        assert_error(
            http.post("/auth/login", json={"username": "admin", "password": "wrong-password"}),
            400,
            "INVALID_CREDENTIALS",
        )
        jwt = login(http, first.username, first.password)
        me = http.get("/v1.0/customer", headers=bearer(jwt))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == first.customer_id

    deleted_key = _exercise_keys(server, first.token, jwt)

    returncode = server.stop()
    assert stopped_ok(returncode), server.describe()

    # Second start on the same data directory: no first start, nothing secret printed.
    again = launcher.start(port=server.port)
    with httpx.Client(base_url=again.base_url, timeout=10.0) as http:
        # The earlier key and the earlier session (same jwt_secret file) still work.
        still = http.get("/v1.0/accesskeys", headers=bearer(first.token))
        assert still.status_code == 200, still.text
        assert [k["id"] for k in still.json()["result"]] == [keys[0]["id"]]
        assert http.get("/v1.0/customer", params={"token": jwt}).status_code == 200
        assert_error(
            http.get("/v1.0/customer", headers=bearer(deleted_key["token"])),
            401,
            "INVALID_CREDENTIALS",
        )
        login(http, first.username, first.password)
    assert stopped_ok(again.stop()), again.describe()
    assert_nothing_secret_printed(again, first.password, first.token)
    # A later start says where it listens, in one line.
    assert again.stdout() == f"keyplane is listening on {again.base_url}\n"


def assert_nothing_secret_printed(server: ServerProcess, *secrets: str) -> None:
    """No first-start block and no secret in what a server printed.

    Checked once the process has exited, so its output is complete: a server
    that is merely slow to print cannot pass. The positive control shows the
    output was captured at all, from start to finish.
    """
    stdout, stderr = server.stdout(), server.stderr()
    assert "Application startup complete." in stderr, server.describe()
    assert "Finished server process" in stderr, server.describe()
    assert "first start" not in stdout
    assert "vb" + "_" not in stdout
    for secret in secrets:
        assert secret not in stdout
        assert secret not in stderr


def test_serve_with_two_workers(bootstrap_workspace: Workspace, launcher: ServerLauncher) -> None:
    server = launcher.start("--workers", "2")
    first = parse_first_start(server.stdout())
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        jwt = login(http, first.username, first.password)
        created = http.post("/v1.0/accesskeys", json={"expire": 86400}, headers=bearer(jwt))
        assert created.status_code == 200, created.text
        token = created.json()["token"]
        # New connections each time, so both workers get a share.
        for _ in range(10):
            for credential in (first.token, token, jwt):
                response = httpx.get(
                    f"{server.base_url}/v1.0/accesskeys", headers=bearer(credential), timeout=10.0
                )
                assert response.status_code == 200, response.text
    assert stopped_ok(server.stop()), server.describe()
    deadline = time.monotonic() + WAIT_SECONDS
    while server.group_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.group_alive(), "worker processes outlived the server"
    # Each request is logged once, by keyplane; uvicorn's line only on request
    # (--uvicorn-access-log), as with one worker.
    records = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    reads = [
        r
        for r in records
        if r.get("logger") == "keyplane.access"
        and (r.get("method"), r.get("path")) == ("GET", "/v1.0/accesskeys")
    ]
    assert len(reads) == 30, server.describe()
    assert [r for r in records if r.get("logger") == "uvicorn.access"] == []


def _owners(pids: list[int]) -> dict[int, int]:
    """Socket inode -> the pid among ``pids`` that holds it."""
    owners = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = pid
    return owners


def _group(server: ServerProcess) -> list[int]:
    """The pids of the server's process group (the supervisor and its workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == server.process.pid:  # the process group id
                pids.append(int(stat.parent.name))
    return pids


def test_two_workers_each_listen_and_share_a_burst_of_connections(
    bootstrap_workspace: Workspace, launcher: ServerLauncher
) -> None:
    # On one shared socket, the worker that woke first accepted every connection
    # of a burst (a proxy's pool opening) and the other idled.
    server = launcher.start("--workers", "2")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        listening = [
            inode for inode, state, _ in tcp_sockets_on_port(server.port) if state == LISTENING
        ]
        if len(listening) == 2:
            break
        time.sleep(0.05)
    owners = _owners(_group(server))
    assert len({owners.get(inode) for inode in listening}) == 2, (listening, owners)
    assert server.process.pid not in {owners.get(inode) for inode in listening}
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(32)]
    try:
        for client in clients:
            client.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200"), server.describe()
        ports = {client.getsockname()[1] for client in clients}
        served: dict[int, int] = {}
        owners = _owners(_group(server))
        for inode, _, remote_port in tcp_sockets_on_port(server.port):
            if remote_port in ports and inode in owners:
                served[owners[inode]] = served.get(owners[inode], 0) + 1
    finally:
        for client in clients:
            client.close()
    assert sum(served.values()) == 32, served
    # Spread by a hash of each connection's addresses: fewer than 5 of 32 on
    # either worker happens about twice in 100,000 runs.
    assert len(served) == 2, served
    assert min(served.values()) >= 5, served
    assert stopped_ok(server.stop()), server.describe()


def test_no_first_start_when_customers_already_exist(
    bootstrap_workspace: Workspace, launcher: ServerLauncher
) -> None:
    migrated = bootstrap_workspace.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    customer = bootstrap_workspace.run_json("customer", "create", "--name", "existing")
    server = launcher.start()
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        assert_error(
            http.post("/auth/login", json={"username": "admin", "password": "x"}),
            400,
            "INVALID_CREDENTIALS",
        )
    assert stopped_ok(server.stop()), server.describe()
    assert_nothing_secret_printed(server)
    assert customer["name"] == "existing"


def test_a_taken_port_creates_and_prints_nothing(
    bootstrap_workspace: Workspace, launcher: ServerLauncher
) -> None:
    """The port is bound before the first start: no secrets for a server that never runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = launcher.start(port=port, wait=False)
        returncode = refused.process.wait(timeout=WAIT_SECONDS)
    assert returncode == 1, refused.describe()
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr()
    assert "first start" not in refused.stdout()
    assert "vb" + "_" not in refused.stdout() + refused.stderr()
    assert "password" not in refused.stdout()

    # Nothing was created: the next start on a free port is the first start.
    server = launcher.start()
    first = parse_first_start(server.stdout())
    assert httpx.get(first.curl_url, timeout=10.0).status_code == 200
    assert stopped_ok(server.stop()), server.describe()


def _request_without_its_body_end(server: ServerProcess, token: str, body: bytes) -> socket.socket:
    """A POST whose head and first body byte are sent: in flight until the rest comes."""
    head = (
        "POST /v1.0/accesskeys HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode()
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS)
    connection.sendall(head + body[:1])
    return connection


def _wait_for_log(server: ServerProcess, event: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while f'"event": "{event}"' not in server.stderr():
        assert time.monotonic() < deadline, f"never logged: {event}\n{server.describe()}"
        time.sleep(0.05)


def _read_response(connection: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := connection.recv(65536):
            received += chunk
    return received


def test_sigterm_drains_requests_in_flight_for_10_seconds(
    bootstrap_workspace: Workspace, launcher: ServerLauncher
) -> None:
    """docs/deployment.md: on SIGTERM, requests in flight get up to 10 s to finish.

    Two requests are in flight when the signal comes, each still sending its
    body (the body timeout is raised so that only the drain can end them): the
    one that finishes within the drain is answered, and the server waits for the
    other until the 10 s are up, then exits.
    """
    bootstrap_workspace.env_overrides["KEYPLANE_BODY_TIMEOUT"] = "120"
    server = launcher.start()
    token = parse_first_start(server.stdout()).token
    body = b'{"name": "drained", "detail": "", "expire": 86400}'
    finishing = _request_without_its_body_end(server, token, body)
    stuck = _request_without_its_body_end(server, token, body)
    with finishing, stuck:
        # Both heads are read once a request on a third connection is answered
        # (the server reads connections in turn): only then is each in flight.
        assert httpx.get(f"{server.base_url}/health/live", timeout=WAIT_SECONDS).status_code == 200
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        _wait_for_log(server, "Shutting down")  # the drain has begun
        finishing.sendall(body[1:])
        answer = _read_response(finishing)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert b'"name":"drained"' in answer.replace(b" ", b"")
        assert server.process.poll() is None, "the server did not wait for the other request"
        returncode = server.process.wait(timeout=WAIT_SECONDS)
        waited = time.monotonic() - signalled
        assert not _read_response(stuck).startswith(b"HTTP/1.1 200 ")  # cut when the drain ended
    assert stopped_ok(returncode), server.describe()
    assert 10.0 <= waited < 10.0 + WAIT_SECONDS, waited
