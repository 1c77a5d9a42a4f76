"""The secrets test: no credential ever lands in a log, an error, or the database.

A real server runs with ``--uvicorn-access-log``, JSON logs at DEBUG, stdout
and stderr captured to files. A scenario bootstraps, logs in, creates keys,
uses every credential form (percent-encoded ones too), sends bad, deleted and
malformed credentials and triggers errors. Every secret that crossed the wire
is collected, then searched for everywhere it must not be.

The first start prints its password and access key on stdout, once: that is
the one place they are allowed, inside the first-start block.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import secrets
import socket
import stat
import string
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import redis
import structlog
from sqlalchemy import text

from keyplane.redaction import REDACTED
from keyplane.store.engine import create_engine
from tests.factories import OPERATOR, Factory
from tests.functional.conftest import (
    JWT_RE,
    TOKEN_RE,
    WAIT_SECONDS,
    FirstStartBlock,
    ServerLauncher,
    ServerProcess,
    Workspace,
    parse_first_start,
    stopped_ok,
)
from tests.logcapture import captured_logging
from tests.servers import PostgresServer, RedisServer

ALNUM = string.ascii_letters + string.digits
DB_FILES = ("keyplane.db", "keyplane.db-wal", "keyplane.db-shm", "keyplane.db-journal")


def random_alnum(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def never_issued_token() -> str:
    return "vb" + "_" + random_alnum(32)


def percent_encode_all(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


def variants(secret: str) -> set[str]:
    """The forms in which a secret could leak: plain, percent-encoded, its random part."""
    forms = {secret}
    if secret.startswith("vb" + "_"):
        body = secret[3:]
        forms |= {body, "vb%5F" + body, "vb%5f" + body, percent_encode_all(secret)}
    if JWT_RE.fullmatch(secret):
        forms.add(secret.rsplit(".", 1)[1])  # the signature
        forms.add(secret.replace(".", "%2E"))
    return {form for form in forms if len(form) >= 8}


def leaks(text: str | bytes, secrets_by_name: dict[str, str]) -> list[str]:
    """Names of the secrets (in any of their forms) found in ``text``."""
    haystack = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    found = []
    for name, secret in secrets_by_name.items():
        for form in variants(secret):
            if form.encode() in haystack:
                found.append(f"{name} (as {form[:6]}...)")
                break
    return found


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    body: str
    headers: dict[str, str]
    allowed: frozenset[str] = frozenset()  # secrets this response may legitimately carry


@dataclass
class Scenario:
    workspace: Workspace
    server: ServerProcess
    first: FirstStartBlock
    stdout: str = ""
    stderr: str = ""
    cli_output: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    issued: dict[str, str] = field(default_factory=dict)  # name -> token actually issued
    exchanges: list[Exchange] = field(default_factory=list)
    db_while_running: bytes = b""
    db_after_stop: bytes = b""
    database: str = "sqlite"
    database_log: bytes = b""  # PostgreSQL's own log
    events: str = ""  # the event outbox, as rows
    redis_messages: list[bytes] = field(default_factory=list)
    redis_stored: bytes = b""
    jwt_secret: str = ""
    query_credential_requests: int = 0


class Driver:
    """Sends requests, records every exchange, and fails loudly on a surprise."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.http = httpx.Client(base_url=scenario.server.base_url, timeout=10.0)

    def send(
        self,
        method: str,
        url: str,
        expect: int,
        *,
        reason: str | None = None,
        allowed: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> httpx.Response:
        response = self.http.request(method, url, **kwargs)
        self.scenario.exchanges.append(
            Exchange(
                method,
                str(response.request.url),
                response.status_code,
                response.text,
                dict(response.headers),
                allowed,
            )
        )
        assert response.status_code == expect, (
            f"{method} {url}: expected {expect}, got {response.status_code}: {response.text}"
        )
        if reason is not None:
            assert response.json()["error"]["reason"] == reason, response.text
        if "?" in url and any(name in url for name in ("ccess", "oken", "%61", "%74")):
            self.scenario.query_credential_requests += 1
        return response

    def close(self) -> None:
        self.http.close()


def _db_bytes(data_dir: Path) -> bytes:
    return b"".join(
        (data_dir / name).read_bytes() for name in DB_FILES if (data_dir / name).is_file()
    )


def _raw_request(port: int, payload: bytes) -> bytes:
    """Send bytes as they are (a malformed request httpx would refuse to build)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as sock:
        sock.sendall(payload)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def _run_scenario(sc: Scenario) -> None:
    first = sc.first
    s = sc.secrets
    s["bootstrap_password"] = first.password
    s["bootstrap_token"] = first.token
    sc.issued["bootstrap_token"] = first.token

    # An agent whose password we choose, created with the CLI while the server runs.
    chosen_password = "Pw-" + random_alnum(20)
    s["chosen_password"] = chosen_password
    created = sc.workspace.run(
        "agent",
        "create",
        "--customer-id",
        first.customer_id,
        "--username",
        "operator",
        "--permission",
        "32",
        "--password-stdin",
        stdin=chosen_password + "\n",
    )
    assert created.returncode == 0, created.stderr
    sc.cli_output = created.stdout + created.stderr

    d = Driver(sc)
    try:
        _drive(d, sc, chosen_password)
    finally:
        d.close()


def _drive(d: Driver, sc: Scenario, chosen_password: str) -> None:
    first, s = sc.first, sc.secrets
    t0 = first.token

    # --- login, good and bad ---
    wrong_password = "Wrong-" + random_alnum(20)
    unknown_user_password = "Nobody-" + random_alnum(20)
    s["wrong_password"] = wrong_password
    s["unknown_user_password"] = unknown_user_password
    jwt0 = d.send(
        "POST",
        "/auth/login",
        200,
        json={"username": "admin", "password": first.password},
    ).json()["token"]
    jwt1 = d.send(
        "POST",
        "/auth/login",
        200,
        json={"username": "operator", "password": chosen_password},
    ).json()["token"]
    s["jwt_admin"], s["jwt_operator"] = jwt0, jwt1
    # The login responses legitimately carry their JWT.
    sc.exchanges[-2].allowed = frozenset({"jwt_admin"})
    sc.exchanges[-1].allowed = frozenset({"jwt_operator"})
    d.send(
        "POST",
        "/auth/login",
        400,
        reason="INVALID_CREDENTIALS",
        json={"username": "admin", "password": wrong_password},
    )
    d.send(
        "POST",
        "/auth/login",
        400,
        reason="INVALID_CREDENTIALS",
        json={"username": "no-such-user", "password": unknown_user_password},
    )
    # Not JSON, with the real password inside: the 400 must not echo it.
    d.send(
        "POST",
        "/auth/login",
        400,
        reason="INVALID_JSON_BODY",
        content=f'{{"username": "admin", "password": "{first.password}"',
        headers={"Content-Type": "application/json"},
    )
    d.send(
        "POST",
        "/auth/login",
        400,
        reason="INVALID_JSON_BODY",
        json={"username": "admin", "password": [first.password]},
    )
    d.send(
        "POST",
        "/auth/login",
        400,
        reason="INVALID_JSON_BODY",
        json=[first.password, chosen_password],
    )
    # A password in a query string and Basic auth: wrong places, still never logged.
    d.send("GET", f"/auth/login?username=admin&password={first.password}", 405)
    d.send(
        "GET",
        "/v1.0/customer",
        401,
        auth=("admin", first.password),
    )

    # --- create keys with each session form ---
    def create(name: str, expect_name: str, **kwargs: Any) -> str:
        if "headers" not in kwargs and "params" not in kwargs:
            kwargs["headers"] = {"Authorization": f"Bearer {jwt0}"}
        response = d.send(
            "POST",
            "/v1.0/accesskeys",
            200,
            allowed=frozenset({expect_name}),
            json={"name": name, "expire": 86400 * 2},
            **kwargs,
        )
        token = response.json()["token"]
        assert TOKEN_RE.fullmatch(token)
        s[expect_name] = token
        sc.issued[expect_name] = token
        return token

    k1 = create("k1", "key1", headers={"Authorization": f"Bearer {jwt0}"})
    k2 = create("k2", "key2", params={"token": jwt1})
    k3 = create("k3", "key3", headers={"Cookie": f"token={jwt0}"})
    k4 = create("k4", "key4", headers={"Authorization": f"Bearer {t0}"})
    s["key4_deleted"] = s.pop("key4")
    sc.issued["key4_deleted"] = sc.issued.pop("key4")
    sc.exchanges[-1].allowed = frozenset({"key4_deleted"})

    # --- use them in every accepted form ---
    body1 = k1[3:]
    ok_urls = [
        f"/v1.0/accesskeys?accesskey={t0}",
        f"/v1.0/accesskeys?accesskey={k1}",
        f"/v1.0/accesskeys?access%6Bey={k1}",
        f"/v1.0/accesskeys?access%6bey={k2}",
        f"/v1.0/accesskeys?%61ccesskey={k2}",
        f"/v1.0/accesskeys?accesskey=vb%5F{body1}",
        f"/v1.0/accesskeys?accesskey=vb%5f{body1}",
        f"/v1.0/accesskeys?accesskey={percent_encode_all(k3)}",
        f"/v1.0/accesskeys?page_size=5&accesskey={k3}&page_size=7",
        f"/v1.0/customer?token={jwt0}",
        f"/v1.0/customer?tok%65n={jwt1}",
        f"/v1.0/customer?token={jwt0.replace('.', '%2E')}",
    ]
    for url in ok_urls:
        d.send("GET", url, 200)
    for credential in (t0, k1, k2, jwt0, jwt1):
        d.send("GET", "/v1.0/accesskeys", 200, headers={"Authorization": f"Bearer {credential}"})
    d.send("GET", "/v1.0/accesskeys", 200, headers={"Authorization": f"bearer {k3}"})
    d.send("GET", "/v1.0/accesskeys", 200, headers={"Cookie": f"accesskey={k3}"})
    d.send("GET", "/v1.0/accesskeys", 200, headers={"Cookie": f"token={jwt1}; other=1"})
    # A request id made of a credential is not reused (nor logged).
    reply = d.send("GET", "/v1.0/customer", 200, headers={"Authorization": f"Bearer {k1}"})
    reply = d.send(
        "GET",
        "/v1.0/customer",
        200,
        headers={"Authorization": f"Bearer {k1}", "X-Request-ID": k2},
    )
    assert reply.headers["x-request-id"] != k2

    # Rename and fetch one key, by id, with a key.
    key4_id = next(
        k["id"]
        for k in d.send("GET", "/v1.0/accesskeys", 200, params={"accesskey": k4}).json()["result"]
        if k["name"] == "k4"
    )
    d.send("PUT", f"/v1.0/accesskeys/{key4_id}", 200, json={"name": "x"}, params={"token": jwt1})
    d.send("GET", f"/v1.0/accesskeys/{key4_id}", 200, headers={"Cookie": f"accesskey={k1}"})

    # --- delete k4, then use it everywhere: refused ---
    d.send("DELETE", f"/v1.0/accesskeys/{key4_id}", 200, headers={"Cookie": f"accesskey={k1}"})
    for kwargs in (
        {"params": {"accesskey": k4}},
        {"headers": {"Authorization": f"Bearer {k4}"}},
        {"headers": {"Cookie": f"accesskey={k4}"}},
    ):
        d.send("GET", "/v1.0/accesskeys", 401, reason="INVALID_CREDENTIALS", **kwargs)
    d.send("GET", f"/v1.0/accesskeys?access%6Bey={k4}", 401, reason="INVALID_CREDENTIALS")

    # --- bad and malformed credentials ---
    forged_signature = jwt0.rsplit(".", 1)[0] + "." + random_alnum(43)
    claims = pyjwt.decode(jwt0, options={"verify_signature": False})
    other_secret_jwt = pyjwt.encode(claims, secrets.token_urlsafe(48), algorithm="HS256")
    unissued = never_issued_token()
    too_short = "vb" + "_" + random_alnum(20)
    too_long = "vb" + "_" + random_alnum(40)
    garbage = "garbage-" + secrets.token_hex(12)
    s.update(
        forged_jwt=forged_signature,
        other_secret_jwt=other_secret_jwt,
        unissued_token=unissued,
        too_short_token=too_short,
        too_long_token=too_long,
        garbage_credential=garbage,
    )
    for bad in (forged_signature, other_secret_jwt, garbage):
        d.send("GET", "/v1.0/accesskeys", 401, reason="INVALID_CREDENTIALS", params={"token": bad})
        d.send(
            "GET",
            "/v1.0/accesskeys",
            401,
            reason="INVALID_CREDENTIALS",
            headers={"Authorization": f"Bearer {bad}"},
        )
        d.send(
            "GET",
            "/v1.0/accesskeys",
            401,
            reason="INVALID_CREDENTIALS",
            headers={"Cookie": f"token={bad}"},
        )
    for bad in (unissued, too_short, too_long, garbage):
        d.send(
            "GET", "/v1.0/accesskeys", 401, reason="INVALID_CREDENTIALS", params={"accesskey": bad}
        )
        d.send(
            "GET",
            "/v1.0/accesskeys",
            401,
            reason="INVALID_CREDENTIALS",
            headers={"Cookie": f"accesskey={bad}"},
        )
    for bad in (unissued, too_short, too_long):
        d.send(
            "GET",
            "/v1.0/accesskeys",
            401,
            reason="INVALID_CREDENTIALS",
            headers={"Authorization": f"Bearer {bad}"},
        )

    # --- errors with credentials in odd places ---
    auth = {"Authorization": f"Bearer {k1}"}
    d.send("GET", f"/v1.0/accesskeys/{k2}", 400, reason="INVALID_ID", headers=auth)
    d.send("GET", f"/v1.0/accesskeys/vb%5F{k2[3:]}", 400, reason="INVALID_ID", headers=auth)
    d.send("PUT", f"/v1.0/accesskeys/{jwt1}", 400, reason="INVALID_ID", headers=auth, json={})
    d.send("DELETE", f"/v1.0/accesskeys/{k3}", 400, reason="INVALID_ID", headers=auth)
    d.send("GET", f"/v1.0/accesskeys/{k2}", 401, reason="AUTHENTICATION_REQUIRED")
    d.send("GET", f"/v1.0/nothing/{k2}", 404, reason="ROUTE_NOT_FOUND")
    d.send("GET", f"/v1.0/nothing/{percent_encode_all(k3)}", 404)
    d.send("GET", f"/v2/{jwt0}?accesskey={k1}", 404)
    d.send("GET", f"/{k1}/{jwt1}", 404)
    d.send("PATCH", f"/v1.0/accesskeys?accesskey={k1}", 405)
    d.send(
        "GET",
        "/v1.0/accesskeys",
        400,
        reason="INVALID_PAGE_TOKEN",
        params={"page_token": k2, "accesskey": k1},
    )
    d.send("GET", "/v1.0/accesskeys", 400, params={"page_token": jwt1}, headers=auth)
    d.send(
        "GET",
        "/v1.0/accesskeys",
        400,
        reason="INVALID_REQUEST_PARAMETER",
        params={"page_size": k2},
        headers=auth,
    )
    d.send(
        "POST",
        "/v1.0/accesskeys",
        400,
        reason="INVALID_JSON_BODY",
        content=f'{{"name": "{k2}", "expire": 86400',
        headers=auth,
    )
    d.send("POST", "/v1.0/accesskeys", 400, json={"name": "n", "expire": k2}, headers=auth)
    d.send("POST", "/v1.0/accesskeys", 400, json={"name": [k2], "expire": 86400}, headers=auth)
    d.send("POST", "/v1.0/accesskeys", 400, json={"expire": 10}, headers=auth)
    d.send("PUT", f"/v1.0/accesskeys/{key4_id}", 409, json={"name": k3}, headers=auth)
    # Trailing slash: whatever the answer, the query must be redacted in the logs.
    slash = d.http.get(f"/v1.0/accesskeys/?accesskey={k1}")
    sc.query_credential_requests += 1
    assert slash.status_code in (200, 307, 404), slash.text
    # A request uvicorn cannot parse, with a key in it.
    raw = _raw_request(
        d.scenario.server.port,
        (
            f"GET /v1.0/accesskeys?accesskey={k1} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {k2}\r\nBroken header line\r\n\r\n"
        ).encode(),
    )
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    assert k1.encode() not in raw
    assert k2.encode() not in raw
    # A WebSocket handshake: uvicorn logs its own line, query included.
    raw = _raw_request(
        d.scenario.server.port,
        (
            f"GET /v1.0/accesskeys?accesskey={k1} HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    assert raw.startswith(b"HTTP/1.1 403"), raw[:200]

    # --- a session ended by a logout: its id is kept, never the token ---
    ended = d.send(
        "POST", "/auth/login", 200, json={"username": "admin", "password": first.password}
    ).json()["token"]
    s["logged_out_jwt"] = ended
    sc.exchanges[-1].allowed = frozenset({"logged_out_jwt"})
    d.send("POST", "/auth/logout", 204, headers={"Authorization": f"Bearer {ended}"})
    d.send(
        "GET",
        "/v1.0/customer",
        401,
        reason="INVALID_CREDENTIALS",
        headers={"Authorization": f"Bearer {ended}"},
    )

    # Credentials percent-encoded twice in a path (a proxy that re-encodes):
    # kept apart so the main log check stays about the usual forms.
    k5 = create("k5", "double_encoded_key")
    jwt2 = d.send(
        "POST", "/auth/login", 200, json={"username": "admin", "password": first.password}
    ).json()["token"]
    s["double_encoded_jwt"] = jwt2
    sc.exchanges[-1].allowed = frozenset({"double_encoded_jwt"})
    d.send("GET", f"/v1.0/nothing/vb%255F{k5[3:]}", 404)
    d.send("GET", f"/v1.0/nothing/{jwt2.replace('.', '%252E')}", 404)


class RedisTap:
    """Every message published on the shared Redis while the scenario runs (events included)."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._pubsub.psubscribe("*")
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None and isinstance(message.get("data"), bytes):
                self.messages.append(message["channel"] + b" " + message["data"])

    def stored(self) -> bytes:
        """Every key and value Redis holds now."""
        chunks = []
        for key in self._client.scan_iter(count=1000):
            chunks.append(key)
            if self._client.type(key) == b"string":
                chunks.append(self._client.get(key) or b"")
        return b"\n".join(chunks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)
        self._pubsub.close()
        self._client.close()


async def _execute(url: str, statement: str) -> str:
    """One statement on the scenario's database; the rows as text."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            if statement == "CHECKPOINT":
                await connection.execute(text("CHECKPOINT"))
                return ""
            rows = (await connection.execute(text(statement))).all()
            return "\n".join(repr(tuple(row)) for row in rows)
    finally:
        await engine.dispose()


def _postgres_bytes(postgres: PostgresServer, url: str) -> bytes:
    """The cluster's files (tables and write-ahead log), after a checkpoint."""
    asyncio.run(_execute(url, "CHECKPOINT"))
    return b"".join(
        path.read_bytes()
        for path in sorted(postgres.data.rglob("*"))
        if path.is_file() and path.suffix not in (".pid", ".opts")
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scenario(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("secrets")
    if redis_server.process is None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as fresh:
        fresh.flushdb()  # no failure budget spent by an earlier scenario
    env_overrides = {
        "KEYPLANE_BOOTSTRAP": "true",
        "KEYPLANE_LOG_FORMAT": "json",
        "KEYPLANE_LOG_LEVEL": "DEBUG",
        "KEYPLANE_REDIS_URL": redis_server.url,
    }
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        database_url = postgres.create_database(f"secrets_{uuid.uuid4().hex[:8]}")
        env_overrides["KEYPLANE_DATABASE_URL"] = database_url
    ws = Workspace(cwd=root / "cwd", data_dir=root / "data", env_overrides=env_overrides)
    ws.cwd.mkdir()
    ws.data_dir.mkdir()
    launcher = ServerLauncher(ws)
    tap = RedisTap(redis_server.url)
    try:
        server = launcher.start("--uvicorn-access-log")
        sc = Scenario(workspace=ws, server=server, first=parse_first_start(server.stdout()))
        sc.database = request.param
        _run_scenario(sc)
        if postgres is None:
            sc.db_while_running = _db_bytes(ws.data_dir)
        else:
            sc.db_while_running = _postgres_bytes(postgres, database_url)
        sc.redis_stored = tap.stored()
        returncode = server.stop(WAIT_SECONDS)
        assert stopped_ok(returncode), server.describe()
        if postgres is None:
            sc.db_after_stop = _db_bytes(ws.data_dir)
        else:
            sc.db_after_stop = _postgres_bytes(postgres, database_url)
            sc.database_log = (postgres.root / "server.log").read_bytes()
        sc.stdout = server.stdout()
        sc.stderr = server.stderr()
        sc.jwt_secret = (ws.data_dir / "jwt_secret").read_text().strip()
        sc.events = asyncio.run(
            _execute(ws.env["KEYPLANE_DATABASE_URL"], "SELECT * FROM events ORDER BY 1")
        )
        sc.redis_messages = list(tap.messages)
        yield sc
    finally:
        tap.close()
        launcher.cleanup()


@pytest.mark.e2e
def test_scenario_collected_every_kind_of_secret(scenario: Scenario) -> None:
    names = set(scenario.secrets)
    assert {"bootstrap_password", "chosen_password", "jwt_admin", "key1", "forged_jwt"} <= names
    assert len(scenario.issued) == 6
    assert len(scenario.exchanges) > 80
    assert scenario.stderr, "the server logged nothing?"


@pytest.mark.e2e
def test_no_secret_in_any_log_line(scenario: Scenario) -> None:
    usual = {k: v for k, v in scenario.secrets.items() if not k.startswith("double_encoded")}
    found = leaks(scenario.stderr, usual)
    assert not found, f"credentials in the server's logs: {found}"
    assert scenario.jwt_secret not in scenario.stderr


@pytest.mark.e2e
def test_no_double_percent_encoded_secret_in_any_log_line(scenario: Scenario) -> None:
    double = {k: v for k, v in scenario.secrets.items() if k.startswith("double_encoded")}
    assert len(double) == 2
    found = leaks(scenario.stderr, double)
    lines = [
        line
        for line in scenario.stderr.splitlines()
        if any(v[3:20] in line or v[-20:] in line for v in double.values())
    ]
    assert not found, f"credentials in the server's logs: {found}\n" + "\n".join(lines)


@pytest.mark.e2e
def test_logs_are_json_lines(scenario: Scenario) -> None:
    lines = [line for line in scenario.stderr.splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            not_json.append(line)
    assert not not_json, f"KEYPLANE_LOG_FORMAT=json, yet: {not_json[:5]}"


def _log_records(stderr: str) -> list[dict[str, Any]]:
    records = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@pytest.mark.e2e
def test_access_logs_show_redacted_where_credentials_were(scenario: Scenario) -> None:
    records = _log_records(scenario.stderr)
    uvicorn_lines = [r["event"] for r in records if r.get("logger") == "uvicorn.access"]
    keyplane_lines = [r for r in records if r.get("logger") == "keyplane.access"]
    assert uvicorn_lines, "--uvicorn-access-log produced no access lines"
    assert keyplane_lines

    def uvicorn_has(fragment: str) -> None:
        assert any(fragment in line for line in uvicorn_lines), (
            f"no uvicorn access line contains {fragment!r}"
        )

    def keyplane_has(field_name: str, fragment: str) -> None:
        assert any(fragment in str(r.get(field_name)) for r in keyplane_lines), (
            f"no keyplane access line has {fragment!r} in {field_name}"
        )

    for fragment in (
        f"accesskey={REDACTED}",
        f"access%6Bey={REDACTED}",
        f"access%6bey={REDACTED}",
        f"%61ccesskey={REDACTED}",
        f"token={REDACTED}",
        f"tok%65n={REDACTED}",
        f"page_token={REDACTED}",
        f"password={REDACTED}",
        f"/v1.0/accesskeys/{REDACTED}",
        f"/v1.0/nothing/{REDACTED}",
    ):
        uvicorn_has(fragment)
    for fragment in (
        f"accesskey={REDACTED}",
        f"access%6Bey={REDACTED}",
        f"token={REDACTED}",
        f"password={REDACTED}",
    ):
        keyplane_has("query", fragment)
    keyplane_has("path", f"/v1.0/accesskeys/{REDACTED}")

    # Every access line of a request that carried a query credential is redacted.
    with_query_credential = [
        line
        for line in uvicorn_lines
        if any(name in line for name in ("accesskey=", "ccess%6", "%61ccess", "token=", "%65n="))
    ]
    assert len(with_query_credential) >= scenario.query_credential_requests
    for line in with_query_credential:
        assert REDACTED in line, line


@pytest.mark.e2e
def test_no_secret_in_http_responses(scenario: Scenario) -> None:
    problems = []
    for exchange in scenario.exchanges:
        forbidden = {k: v for k, v in scenario.secrets.items() if k not in exchange.allowed}
        found = leaks(exchange.body, forbidden)
        headers = {k: v for k, v in exchange.headers.items() if k.lower() != "location"}
        found += leaks(json.dumps(headers), forbidden)
        if found:
            problems.append(f"{exchange.method} {exchange.status}: {found}")
        if exchange.status >= 400:
            error = json.loads(exchange.body)["error"]
            assert set(error) == {"status", "reason", "message", "request_id"}, exchange.body
            assert "Traceback" not in exchange.body
    assert not problems, "credentials in HTTP responses:\n" + "\n".join(problems)


@pytest.mark.e2e
def test_database_holds_only_token_hashes(scenario: Scenario) -> None:
    for label, raw in (
        ("while running", scenario.db_while_running),
        ("after stop", scenario.db_after_stop),
    ):
        assert raw, f"no database files found {label}"
        found = leaks(raw, scenario.secrets)
        assert not found, f"credentials in the {scenario.database} files ({label}): {found}"
        assert scenario.jwt_secret.encode() not in raw
    both = scenario.db_while_running + scenario.db_after_stop
    for name, token in scenario.issued.items():
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert digest.encode() in both, f"no sha256 of {name} in the database"
    assert b"$argon2id$" in both, "passwords are stored as argon2id hashes"


@pytest.mark.e2e
def test_no_secret_in_events_redis_or_the_database_server_log(scenario: Scenario) -> None:
    """The event outbox, every Redis message and key, and PostgreSQL's own log."""
    assert "accesskey_created" in scenario.events, "the scenario recorded no event?"
    assert scenario.redis_messages, "nothing was published on Redis?"
    sinks: dict[str, str | bytes] = {
        "event outbox": scenario.events,
        "redis messages": b"\n".join(scenario.redis_messages),
        "redis keys and values": scenario.redis_stored,
        "database server log": scenario.database_log,
    }
    for name, content in sinks.items():
        found = leaks(content, scenario.secrets)
        assert not found, f"credentials in the {name}: {found}"
        raw = content if isinstance(content, bytes) else content.encode()
        assert scenario.jwt_secret.encode() not in raw, name


@pytest.mark.e2e
def test_jwt_secret_file_is_private(scenario: Scenario) -> None:
    path = scenario.workspace.data_dir / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(scenario.jwt_secret.encode()) >= 32
    assert scenario.jwt_secret not in scenario.stdout
    assert scenario.jwt_secret not in scenario.cli_output


@pytest.mark.e2e
def test_first_start_secrets_only_in_the_first_start_block(scenario: Scenario) -> None:
    first = scenario.first
    stdout = scenario.stdout
    assert stdout.count(first.block) == 1
    assert first.block.count(first.password) == 1
    # The "access key" line, the curl URL and the curl Bearer line.
    assert first.block.count(first.token) == 3
    outside = stdout.replace(first.block, "")
    assert not leaks(outside, scenario.secrets), outside
    # Besides the block, only the line saying where the server listens.
    (listening,) = [line for line in outside.splitlines() if line.strip()]
    assert re.fullmatch(r"keyplane is listening on http://127\.0\.0\.1:\d+", listening)
    others = {
        k: v
        for k, v in scenario.secrets.items()
        if k not in ("bootstrap_password", "bootstrap_token")
    }
    assert not leaks(stdout, others)
    assert not leaks(scenario.cli_output, scenario.secrets), "agent create echoed a password"


@pytest.mark.e2e
def test_no_password_hash_in_logs(scenario: Scenario) -> None:
    """An argon2 hash is crackable offline: it is a secret too, at DEBUG as well."""
    assert "$argon2" not in scenario.stderr, next(
        line for line in scenario.stderr.splitlines() if "$argon2" in line
    )[:300]


# --- in-process: the ASGI app with logging configured as in production ---


@dataclass
class CapturedLogs:
    fmt: str
    stream: io.StringIO


@pytest.fixture(params=["json"])
def captured_logs(request: pytest.FixtureRequest) -> Iterator[CapturedLogs]:
    """Logging configured as in production (format from the param), into a buffer."""
    with captured_logging(request.param) as stream:
        yield CapturedLogs(request.param, stream)


@pytest.mark.parametrize("captured_logs", ["json", "console"], indirect=True)
async def test_in_process_logs_never_carry_credentials(
    client: httpx.AsyncClient,
    factory: Factory,
    captured_logs: CapturedLogs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = "Pw-" + random_alnum(20)
    customer = await factory.customer()
    agent = await factory.agent(customer, password=password)
    _, token = await factory.accesskey(customer)
    doomed, doomed_token = await factory.accesskey(customer)
    await factory.services.accesskeys.delete(OPERATOR, doomed.id)

    response = await client.post(
        "/auth/login", json={"username": agent.username, "password": password}
    )
    assert response.status_code == 200, response.text
    session = response.json()["token"]
    created = await client.post(
        "/v1.0/accesskeys", json={"expire": 86400}, headers={"Authorization": f"Bearer {session}"}
    )
    assert created.status_code == 200, created.text
    new_token = created.json()["token"]
    wrong = "Wrong-" + random_alnum(20)
    unissued = never_issued_token()
    secret_values = {
        "password": password,
        "wrong_password": wrong,
        "token": token,
        "doomed_token": doomed_token,
        "new_token": new_token,
        "session": session,
        "unissued": unissued,
    }

    bodies: list[str] = []
    expectations: list[tuple[str, dict[str, Any], int]] = [
        (f"/v1.0/accesskeys?accesskey={token}", {}, 200),
        (f"/v1.0/accesskeys?access%6Bey={token}", {}, 200),
        (f"/v1.0/accesskeys?accesskey=vb%5F{new_token[3:]}", {}, 200),
        (f"/v1.0/customer?token={session}", {}, 200),
        ("/v1.0/customer", {"headers": {"Authorization": f"Bearer {new_token}"}}, 200),
        ("/v1.0/customer", {"headers": {"Cookie": f"token={session}"}}, 200),
        (f"/v1.0/accesskeys?accesskey={doomed_token}", {}, 401),
        (f"/v1.0/accesskeys?accesskey={unissued}", {}, 401),
        (f"/v1.0/accesskeys/{token}?token={session}", {}, 400),
        (f"/v1.0/nothing/{token}", {}, 404),
        (f"/v2/{session}", {}, 404),
    ]
    for url, kwargs, status in expectations:
        reply = await client.get(url, **kwargs)
        assert reply.status_code == status, (url, reply.text)
        bodies.append(reply.text)
    bad_login = await client.post(
        "/auth/login", json={"username": agent.username, "password": wrong}
    )
    assert bad_login.status_code == 400
    bodies.append(bad_login.text)
    broken = await client.post(
        "/auth/login",
        content=f'{{"username": "{agent.username}", "password": "{password}"',
    )
    assert broken.status_code == 400
    bodies.append(broken.text)

    logs = captured_logs.stream.getvalue()
    out, err = capsys.readouterr()
    everything = logs + out + err
    assert logs, "nothing was logged"
    assert not leaks(everything, secret_values), leaks(everything, secret_values)
    assert not leaks("\n".join(bodies), secret_values)

    if captured_logs.fmt == "console":
        # Console format: one line per record, key=value pairs.
        access_lines = [line for line in logs.splitlines() if "keyplane.access" in line]
        assert len(access_lines) >= len(expectations)
        for fragment in (
            f"accesskey={REDACTED}",
            f"access%6Bey={REDACTED}",
            f"token={REDACTED}",
            f"/v1.0/accesskeys/{REDACTED}",
            f"/v1.0/nothing/{REDACTED}",
            f"/v2/{REDACTED}",
        ):
            assert any(fragment in line for line in access_lines), fragment
        return
    access = [
        record
        for record in _log_records(logs)
        if record.get("logger") == "keyplane.access" and record.get("event") == "request"
    ]
    queries = [str(r.get("query")) for r in access]
    paths = [str(r.get("path")) for r in access]
    assert f"accesskey={REDACTED}" in queries
    assert f"access%6Bey={REDACTED}" in queries
    assert f"token={REDACTED}" in queries
    assert f"/v1.0/accesskeys/{REDACTED}" in paths
    assert f"/v1.0/nothing/{REDACTED}" in paths
    assert f"/v2/{REDACTED}" in paths


def test_redacted_json_log_lines_stay_valid_json(captured_logs: CapturedLogs) -> None:
    """Redaction must not break the JSON it redacts (e.g. eat an escaping backslash)."""
    token = never_issued_token()
    # uvicorn's WebSocket line: the query ends right before a quote.
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" %d', "127.0.0.1:5000", f"/v1.0/accesskeys?accesskey={token}", 403
    )
    structlog.get_logger("keyplane.test").info(
        "fetched", url=f'see "http://h/v1.0/accesskeys?accesskey={token}"', note='a "quoted" word'
    )
    lines = [line for line in captured_logs.stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 2, lines
    for line in lines:
        assert token not in line
        assert token[3:] not in line
        record = json.loads(line)  # raises on a broken line
        assert REDACTED in json.dumps(record)
