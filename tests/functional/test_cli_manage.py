"""The management commands in local mode (on the database): lists, get, update, verify, doctor.

One migrated installation for the module; independent commands run side by side.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.functional.conftest import Workspace, free_port
from tests.functional.terminal import run_in_pty

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("manage")
    workspace = Workspace(cwd=root / "cwd", data_dir=root / "data")
    workspace.cwd.mkdir()
    workspace.data_dir.mkdir()
    migrated = workspace.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    return workspace


@pytest.fixture(scope="module")
def setup(ws: Workspace) -> dict[str, Any]:
    first = ws.run_json("customer", "create", "--name", "First", "--email", "a@example.com")
    second = ws.run_json("customer", "create", "--name", "Second")
    agent = ws.run_json(
        "agent", "create", "--customer-id", first["id"], "--username", "ann", "--permission", "32"
    )
    keys = ws.run_json(
        "accesskey",
        "create",
        "--customer-id",
        first["id"],
        "--expire",
        "86400",
        "--name",
        "bulk",
        "--count",
        "3",
    )
    return {"first": first, "second": second, "agent": agent, "keys": keys}


def test_bulk_create_prints_each_token_once(setup: dict[str, Any]) -> None:
    keys = setup["keys"]
    assert len(keys) == 3
    assert len({key["token"] for key in keys}) == 3
    assert {key["name"] for key in keys} == {"bulk"}


def test_customer_list_get_update(ws: Workspace, setup: dict[str, Any]) -> None:
    first = setup["first"]
    listed, got, limited = ws.run_many(
        (("customer", "list"), None),
        (("customer", "get", first["id"]), None),
        (("customer", "list", "--limit", "1"), None),
    )
    assert listed.returncode == 0, listed.stderr
    ids = [customer["id"] for customer in json.loads(listed.stdout)]
    assert ids == [first["id"], setup["second"]["id"]]  # oldest first
    assert json.loads(got.stdout)["email"] == "a@example.com"
    assert len(json.loads(limited.stdout)) == 1

    updated = ws.run_json("customer", "update", first["id"], "--detail", "new detail")
    assert updated["detail"] == "new detail"
    assert updated["email"] == "a@example.com"  # not given: kept
    nothing = ws.run("customer", "update", first["id"])
    assert nothing.returncode == 2
    assert "--detail" in nothing.stderr

    created, changed = ws.run_many(
        (("customer", "create", "--name", "Typo", "--email", "ops.example.com"), None),
        (("customer", "update", first["id"], "--email", "a@example"), None),
    )
    for refused in (created, changed):
        assert refused.returncode == 1, refused
        assert "INVALID_EMAIL" in refused.stderr
        assert "'email'" in refused.stderr
    assert ws.run_json("customer", "get", first["id"])["email"] == "a@example.com"


def test_agent_list_get_set_password(ws: Workspace, setup: dict[str, Any]) -> None:
    first, agent = setup["first"], setup["agent"]
    listed, got, missing = ws.run_many(
        (("agent", "list", "--customer-id", first["id"]), None),
        (("agent", "get", agent["id"]), None),
        (("agent", "get", str(uuid.uuid4())), None),
    )
    assert [row["username"] for row in json.loads(listed.stdout)] == ["ann"]
    shown = json.loads(got.stdout)
    assert shown["id"] == agent["id"]
    assert "password" not in shown
    assert "password_hash" not in shown
    assert missing.returncode == 1
    assert "keyplane agent list" in missing.stderr  # what to type next

    generated = ws.run_json("agent", "set-password", agent["id"])
    assert generated["password"] != agent["password"]
    assert generated["tm_update"] is not None
    chosen = ws.run(
        "agent", "set-password", agent["id"], "--password-stdin", stdin="s3cret-pw, long enough\n"
    )
    assert chosen.returncode == 0, chosen.stderr
    assert "s3cret-pw, long enough" not in chosen.stdout + chosen.stderr
    assert "password" not in json.loads(chosen.stdout)


def test_accesskey_get_update_and_list_limit(ws: Workspace, setup: dict[str, Any]) -> None:
    first, key = setup["first"], setup["keys"][0]
    got, show, limited, everything = ws.run_many(
        (("accesskey", "get", key["id"]), None),
        (("accesskey", "show", key["id"]), None),
        (("accesskey", "list", "--customer-id", first["id"], "--limit", "2"), None),
        (("accesskey", "list", "--customer-id", first["id"]), None),
    )
    assert json.loads(got.stdout) == json.loads(show.stdout)  # the older name still works
    assert len(json.loads(limited.stdout)) == 2
    assert {row["id"] for row in json.loads(everything.stdout)} == {k["id"] for k in setup["keys"]}

    updated = ws.run_json("accesskey", "update", key["id"], "--name", "renamed")
    assert updated["name"] == "renamed"
    assert updated["detail"] == key["detail"]
    missing_customer = ws.run("accesskey", "list")
    assert missing_customer.returncode == 2
    assert "--customer-id" in missing_customer.stderr


def test_verify_says_why_without_printing_the_token(ws: Workspace, setup: dict[str, Any]) -> None:
    live = setup["keys"][1]
    # Its own key to delete: the other tests (in any order) see the setup's keys live.
    gone = ws.run_json(
        "accesskey", "create", "--customer-id", setup["first"]["id"], "--expire", "86400"
    )
    deleted = ws.run_json("accesskey", "delete", gone["id"])
    assert deleted["tm_delete"] is not None
    valid, invalid, malformed, unknown = ws.run_many(
        (("verify", "-"), live["token"] + "\n"),
        (("verify", "-"), gone["token"]),
        (("verify", "vb_" + "short"), None),
        (("verify", "-"), "vb_" + "Z" * 32),
    )
    assert valid.returncode == 0, valid.stderr
    answer = json.loads(valid.stdout)
    assert answer["valid"] is True
    assert answer["id"] == live["id"]
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)["why"].startswith("deleted at ")
    assert json.loads(malformed.stdout)["why"].startswith("malformed")
    assert json.loads(unknown.stdout)["why"].startswith("unknown")
    for result in (valid, invalid, malformed, unknown):
        assert "Traceback" not in result.stderr
        for token in (live["token"], gone["token"]):
            assert token not in result.stdout + result.stderr


def test_doctor_on_a_sound_installation(ws: Workspace, setup: dict[str, Any]) -> None:
    checks = ws.run_json("doctor")
    statuses = {check["check"]: check["status"] for check in checks}
    assert statuses == {
        "configuration": "ok",
        "jwt secret": "ok",
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
        "clock": "ok",
    }


def test_doctor_finds_what_is_wrong(tmp_path: Any) -> None:
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    data.mkdir()
    fresh = Workspace(cwd=cwd, data_dir=data)
    weak = fresh.run("doctor", env={**fresh.env, "KEYPLANE_JWT_SECRET": "ab" * 32})
    assert weak.returncode == 1
    statuses = {check["check"]: check for check in json.loads(weak.stdout)}
    assert statuses["jwt secret"]["status"] == "failed"
    assert statuses["database"]["status"] == "failed"
    assert "keyplane migrate" in statuses["database"]["detail"]
    assert not (data / "keyplane.db").exists()  # the doctor did not create one
    assert "ab" * 32 not in weak.stdout + weak.stderr


def test_tables_on_a_narrow_terminal_keep_whole_ids(ws: Workspace, setup: dict[str, Any]) -> None:
    first = setup["first"]
    returncode, raw = run_in_pty(ws, "accesskey", "list", "--customer-id", first["id"], columns=80)
    assert returncode == 0, raw
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode())
    live = ws.run_json("accesskey", "list", "--customer-id", first["id"])
    assert live
    for key in live:
        assert key["id"] in text
    for key in setup["keys"]:
        assert key["token"] not in text
    # Too narrow for the table: one block per key, each naming its fields.
    assert text.count("token_prefix") == len(live)
    returncode, raw = run_in_pty(ws, "accesskey", "list", "--customer-id", first["id"], columns=220)
    assert returncode == 0, raw
    wide = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode())
    assert wide.count("token_prefix") == 1  # a table: one header for every page
    for key in live:
        assert key["id"] in wide


def test_doctor_reports_a_redis_that_does_not_answer(ws: Workspace, setup: dict[str, Any]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = ws.run("doctor", env={**ws.env, "KEYPLANE_REDIS_URL": dead})
    assert result.returncode == 1, result.stderr
    statuses = {check["check"]: check for check in json.loads(result.stdout)}
    assert statuses["redis"]["status"] == "failed"
    assert "KEYPLANE_REDIS_URL" in statuses["redis"]["detail"]
    assert statuses["database"]["status"] == "ok"
