"""The command line in remote mode (``--url``): a real server, the real console script.

One server for the module; every command reaches it through ``keyplane.client``.
The session ``keyplane login`` keeps lives under a temporary XDG_CONFIG_HOME.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.conftest import (
    FirstStartBlock,
    ServerLauncher,
    ServerProcess,
    Workspace,
    free_port,
    parse_first_start,
)

pytestmark = pytest.mark.e2e


class Remote:
    def __init__(self, workspace: Workspace, server: ServerProcess, first: FirstStartBlock) -> None:
        self.workspace = workspace
        self.server = server
        self.first = first
        self.config = workspace.cwd.parent / "config"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(self.workspace.env)
        # No database for remote commands: they must not need one.
        env["KEYPLANE_DATABASE_URL"] = "sqlite+aiosqlite:////nonexistent/keyplane.db"
        env["XDG_CONFIG_HOME"] = str(self.config)
        env["KEYPLANE_URL"] = self.server.base_url
        env.update(extra)
        return env

    def run(
        self, *args: str, stdin: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.workspace.run(*args, stdin=stdin, env=self.env(**extra))

    def json(self, *args: str, stdin: str | None = None, **extra: str) -> Any:
        result = self.run(*args, stdin=stdin, **extra)
        assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stderr}"
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("remote")
    workspace = Workspace(cwd=root / "cwd", data_dir=root / "data")
    workspace.cwd.mkdir()
    workspace.data_dir.mkdir()
    workspace.env_overrides.update(
        {"KEYPLANE_BOOTSTRAP": "true", "KEYPLANE_SESSION_COOKIE_SECURE": "false"}
    )
    launcher = ServerLauncher(workspace)
    try:
        server = launcher.start()
        yield Remote(workspace, server, parse_first_start(server.stdout()))
    finally:
        launcher.cleanup()


@pytest.fixture(scope="module")
def logged_in(remote: Remote) -> Remote:
    result = remote.run(
        "login",
        "--username",
        remote.first.username,
        "--password-stdin",
        stdin=remote.first.password + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert remote.first.password not in result.stdout + result.stderr
    return remote


def test_login_keeps_the_session_private(logged_in: Remote) -> None:
    stored = logged_in.config / "keyplane" / "sessions.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    data = json.loads(stored.read_text())
    assert set(data["sessions"]) == {logged_in.server.base_url}


def test_whoami(logged_in: Remote) -> None:
    me = logged_in.json("whoami")
    assert me["username"] == logged_in.first.username
    assert me["customer_id"] == logged_in.first.customer_id
    assert me["url"] == logged_in.server.base_url


def test_accesskey_commands_through_the_server(logged_in: Remote) -> None:
    created = logged_in.json("accesskey", "create", "--expire", "86400", "--name", "remote-ci")
    key_id, token = created["id"], created["token"]
    assert created["customer_id"] == logged_in.first.customer_id
    got = logged_in.json("accesskey", "get", key_id)
    assert got["name"] == "remote-ci"
    assert "token" not in got
    assert "tm_last_used" in got  # every expanded field
    updated = logged_in.json("accesskey", "update", key_id, "--detail", "d")
    assert (updated["name"], updated["detail"]) == ("remote-ci", "d")
    assert logged_in.json("accesskey", "disable", key_id)["tm_disable"] is not None
    assert logged_in.json("accesskey", "enable", key_id)["tm_disable"] is None

    listed = logged_in.json("accesskey", "list")
    assert key_id in [key["id"] for key in listed]
    assert all("token" not in key for key in listed)
    limited = logged_in.json("accesskey", "list", "--limit", "1")
    assert len(limited) == 1

    valid = logged_in.run("verify", "-", stdin=token + "\n")
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["valid"] is True
    assert token not in valid.stdout + valid.stderr

    rotated = logged_in.json("accesskey", "rotate", key_id)
    assert rotated["token"] != token
    deleted = logged_in.json("accesskey", "delete", rotated["id"])
    assert deleted["tm_delete"] is not None
    invalid = logged_in.run("verify", "-", stdin=rotated["token"])
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)["valid"] is False
    assert rotated["token"] not in invalid.stdout + invalid.stderr

    again = logged_in.run("accesskey", "get", rotated["id"])
    assert again.returncode == 1
    assert "STATE_INVALID" in again.stderr
    assert "Traceback" not in again.stderr


def test_customer_get_and_update(logged_in: Remote) -> None:
    before = logged_in.json("customer", "get")
    assert before["id"] == logged_in.first.customer_id
    after = logged_in.json("customer", "update", "--detail", "changed remotely")
    assert after["detail"] == "changed remotely"
    assert after.get("name") == before.get("name")  # not given: kept


def test_database_only_commands_say_so(logged_in: Remote) -> None:
    for args in (
        ("agent", "list", "--customer-id", logged_in.first.customer_id),
        ("customer", "list"),
    ):
        result = logged_in.run(*args)
        assert result.returncode == 2, result
        assert "without --url" in result.stderr


def test_an_access_key_from_the_environment(remote: Remote) -> None:
    me = remote.json(
        "whoami", KEYPLANE_ACCESSKEY=remote.first.token, XDG_CONFIG_HOME="/nonexistent"
    )
    assert me["type"] == "accesskey"
    assert remote.first.token not in json.dumps(me)


def test_doctor_against_the_server(logged_in: Remote) -> None:
    checks = logged_in.json("doctor")
    assert {check["check"]: check["status"] for check in checks} == {
        "server": "ok",
        "clock": "ok",
        "credential": "ok",
    }


def test_doctor_names_an_access_key_in_plain_words(remote: Remote) -> None:
    checks = remote.json(
        "doctor", KEYPLANE_ACCESSKEY=remote.first.token, XDG_CONFIG_HOME="/nonexistent"
    )
    credential = next(check for check in checks if check["check"] == "credential")
    assert credential["status"] == "ok"
    assert "Identity" not in credential["detail"]
    assert "access key" in credential["detail"]
    assert remote.first.token not in json.dumps(checks)


def test_a_refused_access_key_is_not_told_to_set_one(remote: Remote) -> None:
    wrong = "vb_" + "A" * 32
    result = remote.run("whoami", KEYPLANE_ACCESSKEY=wrong, XDG_CONFIG_HOME="/nonexistent")
    assert result.returncode == 4, result
    hint = result.stderr.split("hint:")[1]
    assert "KEYPLANE_ACCESSKEY was refused" in hint
    assert "or set KEYPLANE_ACCESSKEY" not in hint
    assert wrong not in result.stderr


def test_logout_then_login_is_needed(remote: Remote, tmp_path: Path) -> None:
    config = tmp_path / "config"
    login = remote.run(
        "login",
        "--username",
        remote.first.username,
        "--password-stdin",
        stdin=remote.first.password,
        XDG_CONFIG_HOME=str(config),
    )
    assert login.returncode == 0, login.stderr
    out = remote.run("logout", XDG_CONFIG_HOME=str(config))
    assert out.returncode == 0, out.stderr
    after = remote.run("whoami", XDG_CONFIG_HOME=str(config))
    assert after.returncode == 4
    assert "keyplane --url" in after.stderr
    assert "login" in after.stderr


def test_a_wrong_password_and_an_unreachable_server(remote: Remote, tmp_path: Path) -> None:
    wrong = remote.run(
        "login",
        "--username",
        remote.first.username,
        "--password-stdin",
        stdin="not-the-password",
        XDG_CONFIG_HOME=str(tmp_path),
    )
    assert wrong.returncode == 1, wrong
    assert "Traceback" not in wrong.stderr
    assert not (tmp_path / "keyplane" / "sessions.json").exists()
    nowhere = remote.run(
        "accesskey",
        "list",
        KEYPLANE_URL=f"http://127.0.0.1:{free_port()}",
        KEYPLANE_ACCESSKEY=remote.first.token,
    )
    assert nowhere.returncode == 3, nowhere
    assert "is the server running" in nowhere.stderr
    assert remote.first.token not in nowhere.stderr
