"""The command line in a terminal of 80, 120 and 220 columns: every list fits, nothing is cut.

Each list is run under a pseudo-terminal of the given width (``COLUMNS`` and the
terminal's size agree), and every id, state and time must appear whole on one
line, with no line wider than the terminal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional.conftest import CLI_TIMEOUT, Workspace, free_port
from tests.functional.terminal import run_in_pty

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WIDTHS = (80, 120, 220)


def screen(output: bytes) -> list[str]:
    """The lines a person sees (colours and cursor codes removed)."""
    text = ANSI.sub("", output.decode("utf-8", "replace")).replace("\r\n", "\n")
    return text.split("\n")


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, str]]:
    """A customer with an agent, an active, a disabled and a rotating key, and an audit log."""
    root = tmp_path_factory.mktemp("terminal")
    ws = Workspace(cwd=root / "cwd", data_dir=root / "data")
    ws.cwd.mkdir()
    ws.data_dir.mkdir()
    assert ws.run("migrate").returncode == 0
    customer = ws.run_json(
        "customer", "create", "--name", "a customer with a rather long name", "--email", "x@y.z"
    )
    cid = customer["id"]
    ws.run_json(
        "agent",
        "create",
        "--customer-id",
        cid,
        "--username",
        "ann",
        "--permission",
        "32",
    )
    keys = [
        ws.run_json("accesskey", "create", "--customer-id", cid, "--expire", "86400", "--name", n)
        for n in ("active", "disabled", "rotating")
    ]
    ws.run_json("accesskey", "disable", keys[1]["id"])
    ws.run_json("accesskey", "rotate", keys[2]["id"], "--grace", "3600")
    return ws, {"customer": cid, "disabled": keys[1]["id"], "rotating": keys[2]["id"]}


LISTS = {
    "accesskeys": ("accesskey", "list", "--customer-id", "{customer}"),
    "customers": ("customer", "list"),
    "agents": ("agent", "list", "--customer-id", "{customer}"),
    "audit": ("audit", "list", "--customer-id", "{customer}"),
    "deliveries": ("webhook", "deliveries", "--customer-id", "{customer}"),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("listing", sorted(LISTS))
def test_every_list_fits_the_terminal_and_cuts_no_id_state_or_time(
    installation: tuple[Workspace, dict[str, str]], listing: str, width: int
) -> None:
    ws, ids = installation
    args = [part.format(**ids) for part in LISTS[listing]]
    returncode, output = run_in_pty(ws, *args, columns=width)
    assert returncode == 0, output
    lines = screen(output)
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, text
    assert ids["customer"] in text or listing in ("deliveries",), text
    # Every row's id whole on one line; no id or time cut anywhere (a time keeps its Z).
    for row in ws.run_json(*args):
        assert any(row["id"] in line for line in lines), (row["id"], text)
    for line in lines:
        for found in re.findall(r"[0-9a-f]{8}-[0-9a-f-]*", line):
            assert UUID.fullmatch(found), (found, text)
        for found in re.findall(r"\d{4}-\d\d-\d\dT[\d:.]*Z?", line):
            assert TIMESTAMP.fullmatch(found), (found, text)
    if listing == "accesskeys":
        words = set(re.findall(r"[a-z]+", text))
        assert {"active", "disabled", "rotating"} <= words, text
    if listing == "audit":
        assert "{" not in text, text  # the actor as text, not a Python dict
        assert re.search(r"agent\s|operator|accesskey", text), text
    if listing == "agents":
        # The agents have no name: the column is left out, as docs/cli.md says.
        assert not re.search(r"^\s*name\b|\sname\s", text, re.MULTILINE), text


def test_a_customer_in_a_table_shows_no_internal_field(
    installation: tuple[Workspace, dict[str, str]],
) -> None:
    ws, ids = installation
    returncode, output = run_in_pty(ws, "customer", "get", ids["customer"], columns=120)
    assert returncode == 0, output
    text = "\n".join(screen(output))
    assert "rtp_debug" not in text, text
    assert "{" not in text, text
    assert ids["customer"] in text


# Commands that fail must leave an empty directory empty.


def _files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def _bare(workspace: Workspace) -> dict[str, str]:
    """The environment of a first-time user: no KEYPLANE_DATABASE_URL or KEYPLANE_DATA_DIR,
    so the defaults (./data/...) in the working directory apply."""
    env = dict(workspace.env)
    del env["KEYPLANE_DATABASE_URL"]
    del env["KEYPLANE_DATA_DIR"]
    return env


def test_a_list_without_a_database_writes_nothing(workspace: Workspace) -> None:
    result = workspace.run("customer", "list", env=_bare(workspace))
    assert result.returncode == 1
    assert "there is no keyplane database" in result.stderr
    assert _files(workspace.cwd) == []


def test_serve_on_a_taken_port_writes_nothing(workspace: Workspace) -> None:
    import socket

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = workspace.run("serve", "--port", str(port), env=_bare(workspace))
    assert result.returncode == 1, result.stderr
    assert "nothing was changed" in result.stderr
    assert _files(workspace.cwd) == []


# Version, completion and a fast start.


def test_version_prints_the_installed_version(workspace: Workspace) -> None:
    from importlib.metadata import version

    result = workspace.run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"keyplane {version('keyplane')}"


def test_shell_completion_is_offered(workspace: Workspace) -> None:
    helped = workspace.run("--help")
    assert "--install-completion" in helped.stdout
    assert "--show-completion" in helped.stdout
    env = {**workspace.env, "SHELL": "/bin/bash"}
    shown = workspace.run("--show-completion", "bash", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "_KEYPLANE_COMPLETE" in shown.stdout
    console = subprocess.run(
        [str(Path(sys.executable).parent / "keyplane")],
        env={
            **workspace.env,
            "_KEYPLANE_COMPLETE": "complete_bash",
            "COMP_WORDS": "keyplane accesskey li",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert "list" in console.stdout.split(), console


def test_importing_the_command_line_leaves_the_server_stack_unloaded() -> None:
    heavy = ("sqlalchemy", "fastapi", "uvicorn", "argon2", "redis", "alembic", "httpx")
    code = (
        f"import sys, keyplane.cli.main; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=CLI_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


# Messages in the user's terms, and hints that point at the real problem.


def test_a_wrong_server_address_is_named_as_such(workspace: Workspace) -> None:
    result = workspace.run("--url", "keys.example.com", "whoami")
    assert result.returncode == 2, result
    assert "base_url" not in result.stderr
    assert "must start with http:// or https://" in result.stderr
    assert "Traceback" not in result.stderr


def test_undocumented_bits_are_blamed_not_the_super_admin_bit(workspace: Workspace) -> None:
    assert workspace.run("migrate").returncode == 0
    customer = workspace.run_json("customer", "create", "--name", "bits")
    common = ("agent", "create", "--customer-id", customer["id"], "--username", "u")
    confirmed, plain = workspace.run_many(
        ((*common, "--permission", "7", "--super-admin", "--yes"), None),
        ((*common, "--permission", "6"), None),
    )
    for result in (confirmed, plain):
        assert result.returncode == 2, result
        assert "not permissions: 2, 4" in result.stderr, result.stderr
        assert "includes bit 1" not in result.stderr
    assert "--super-admin" not in confirmed.stderr.split("hint:")[1]


def test_customer_delete_asks_and_refuses_without_a_terminal(workspace: Workspace) -> None:
    assert workspace.run("migrate").returncode == 0
    customer = workspace.run_json("customer", "create", "--name", "doomed")
    refused = workspace.run("customer", "delete", customer["id"])
    assert refused.returncode == 2, refused
    assert "--yes" in refused.stderr
    assert refused.stdout == ""
    assert workspace.run_json("customer", "get", customer["id"])["status"] == "active"
    deleted = workspace.run_json("customer", "delete", customer["id"], "--yes")
    assert deleted["status"] == "deleted"
