"""End to end: crafted requests cannot stall a server, stored values cannot drive a terminal.

The server is the real ``keyplane serve`` on SQLite and on PostgreSQL. The
terminal checks run the real console script under a pseudo-terminal, as an
operator would meet it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.adversarial import worst_requests
from tests.functional.conftest import (
    ServerLauncher,
    ServerProcess,
    Workspace,
    parse_first_start,
)
from tests.functional.terminal import run_in_pty
from tests.servers import PostgresServer

HEALTH_BOUND = 0.1  # the target on an idle machine
# make test runs two test workers beside the server on two cores: a few
# scheduling slices can add up to more than 0.1 s with no stall at all.
SHARED_MACHINE_BOUND = 0.25
QUIET_SAMPLES = 50
ATTACK_ROUNDS = 3

# Markup, ESC/CSI/OSC/C1 sequences and line breaks, as an API client may store them.
HOSTILE = {
    "markup-close": "[/]",
    "hyperlink": "[link=https://evil.example/]k[/link]",
    "styles": "[reverse][blink]styled",
    "clear": "clear\x1b[2J",
    "title": "title\x1b]0;owned\x07",
    "c1": "up\x9b1A",
    "row": "a\r\nforged | row",
}
RAW = (b"\x1b[2J", b"\x1b]0;", b"\xc2\x9b", b"\x1b]8;", b"\x07", b"\r\nforged")
SHOWN = ("[/]", "[link=https://evil.example/]k[/link]", "\\x1b[2J", "\\x1b]0;owned\\x07")


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, workspace: Workspace, launcher: ServerLauncher
) -> ServerProcess:
    if request.param == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"untrusted_{uuid.uuid4().hex[:12]}")
        workspace.env_overrides["KEYPLANE_DATABASE_URL"] = url
    # The worst requests are 60 KiB heads. At the default limit (32 KiB) they are
    # refused with 431 before anything reads them; an operator may allow heads that
    # large, and the parsers and redaction must stay linear then too.
    workspace.env_overrides["KEYPLANE_MAX_HEADER_BYTES"] = str(256 * 1024)
    return launcher.start()


def test_health_answers_within_100_ms_while_the_worst_requests_arrive(
    server: ServerProcess,
) -> None:
    attacks = worst_requests()
    sent: list[int] = []

    def attack() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as http:
            for _ in range(ATTACK_ROUNDS):
                for target, headers in attacks:
                    sent.append(http.get(target, headers=headers).status_code)

    def timed(http: httpx.Client) -> float:
        started = time.perf_counter()
        response = http.get("/health/live")
        assert response.status_code == 200
        return time.perf_counter() - started

    latencies: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        # Without any attack first: how long this machine, as loaded as it is now, takes.
        quiet = sorted(timed(http) for _ in range(QUIET_SAMPLES))
        attacker = threading.Thread(target=attack)
        attacker.start()
        try:
            while attacker.is_alive() or len(latencies) < 20:
                latencies.append(timed(http))
        finally:
            attacker.join(timeout=60.0)
    assert len(sent) == ATTACK_ROUNDS * len(attacks), server.describe()
    assert set(sent) <= {200, 401, 404, 431}, sent
    # 100 ms is the target on an idle machine; here the bound is 250 ms, or more
    # when the machine is busier (three times the slowest answer seen without
    # any attack). A stalled event loop waits seconds, far above either.
    bound = max(SHARED_MACHINE_BOUND, 3 * quiet[-1])
    worst = max(latencies)
    assert worst < bound, f"/health/live waited {worst:.3f} s (bound {bound:.3f} s); " + (
        server.describe()
    )
    log = server.stderr()
    assert "[CUT " in log
    assert server.process.poll() is None


def assert_terminal_safe(output: bytes, *, expect: tuple[str, ...] = SHOWN) -> None:
    for raw in RAW:
        assert raw not in output, (raw, output[-2000:])
    text = output.decode("utf-8", errors="replace")
    for shown in expect:
        assert shown in text, (shown, text[-3000:])


@pytest.fixture
def hostile_installation(workspace: Workspace, launcher: ServerLauncher) -> Any:
    """Keys, a customer and an agent whose names hold markup, escapes and line breaks."""
    workspace.env_overrides["KEYPLANE_LOG_FORMAT"] = "console"
    server = launcher.start()
    first = parse_first_start(server.stdout())
    auth = {"Authorization": f"Bearer {first.token}"}
    keys = []
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        for label, value in HOSTILE.items():
            response = http.post(
                "/v1.0/accesskeys",
                json={"name": f"{label}:{value}", "detail": value, "expire": 86_400},
                headers=auth,
            )
            assert response.status_code == 200, response.text
            keys.append(response.json()["id"])
        # Request data that would forge log lines in a terminal.
        http.get("/x%1b%5b1A%1b%5b2K%1b%5b1Gfake:%C2%A0admin%C2%A0login%C2%A0ok%0d%0anext")
    assert server.stop() in (0, -15), server.describe()
    return first, keys, server


def test_stored_values_cannot_drive_the_operators_terminal(
    workspace: Workspace, hostile_installation: Any
) -> None:
    first, keys, server = hostile_installation
    log = server.stderr()
    assert "\x1b[1A" not in log
    assert "\\x1b[1A\\x1b[2K\\x1b[1Gfake:" in log
    assert "\\r\\nnext" in log

    name = "".join(HOSTILE.values())
    shown = (*SHOWN, "\\r\\nforged | row", "\\x9b1A")
    returncode, output = run_in_pty(
        workspace, "customer", "create", "--name", name, "--detail", HOSTILE["row"]
    )
    assert returncode == 0, output[-2000:]
    assert_terminal_safe(output, expect=shown)
    customer_id = workspace.run_json(
        "customer", "create", "--name", name, "--detail", HOSTILE["row"]
    )["id"]
    returncode, output = run_in_pty(
        workspace,
        "agent",
        "create",
        "--customer-id",
        customer_id,
        "--username",
        "user" + HOSTILE["clear"] + HOSTILE["hyperlink"],
        "--name",
        name,
        "--detail",
        HOSTILE["row"],
        "--permission",
        "32",
    )
    assert returncode == 0, output[-2000:]
    assert_terminal_safe(output, expect=shown)
    agent_id = workspace.run_json(
        "agent",
        "create",
        "--customer-id",
        customer_id,
        "--username",
        "u" + HOSTILE["title"],
        "--name",
        name,
        "--permission",
        "32",
    )["id"]

    returncode, output = run_in_pty(
        workspace, "accesskey", "list", "--customer-id", first.customer_id
    )
    assert returncode == 0, output[-2000:]
    assert_terminal_safe(output, expect=shown)
    listings = {
        ("customer", "list"): shown,
        ("agent", "list", "--customer-id", customer_id): ("\\x1b[2J",),
    }
    for listing, expected in listings.items():
        returncode, output = run_in_pty(workspace, *listing)
        assert returncode == 0, output[-2000:]
        assert_terminal_safe(output, expect=expected)
    for key_id in keys[:2]:
        returncode, output = run_in_pty(workspace, "accesskey", "delete", key_id)
        assert returncode == 0, output[-2000:]
        assert_terminal_safe(output, expect=())
    returncode, output = run_in_pty(workspace, "agent", "delete", agent_id)
    assert returncode == 0, output[-2000:]
    assert_terminal_safe(output, expect=("\\x1b]0;owned\\x07",))
    returncode, output = run_in_pty(workspace, "customer", "delete", customer_id, "--yes")
    assert returncode == 0, output[-2000:]
    assert_terminal_safe(output, expect=shown)
    # As JSON (piped), the values come back exactly as stored.
    listed = workspace.run_json("accesskey", "list", "--customer-id", first.customer_id)
    assert {key["detail"] for key in listed} >= {HOSTILE["row"], HOSTILE["c1"]}
