"""The command line as a new user meets it: clear failures, full ids, quiet stderr, plain help."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.functional.conftest import Workspace
from tests.functional.terminal import run_in_pty

COMMANDS = [
    (),
    ("serve",),
    ("migrate",),
    ("customer", "create"),
    ("customer", "delete"),
    ("agent", "create"),
    ("agent", "delete"),
    ("accesskey", "create"),
    ("accesskey", "list"),
    ("accesskey", "delete"),
]


@pytest.fixture
def migrated(workspace: Workspace) -> Workspace:
    result = workspace.run("migrate")
    assert result.returncode == 0, result.stderr
    return workspace


def test_listing_the_keys_of_an_unknown_or_deleted_customer_fails(migrated: Workspace) -> None:
    unknown = migrated.run("accesskey", "list", "--customer-id", str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert unknown.stdout == ""
    assert "customer was not found" in unknown.stderr
    customer = migrated.run_json("customer", "create", "--name", "gone")
    migrated.run_json("accesskey", "create", "--customer-id", customer["id"], "--expire", "86400")
    migrated.run_json("customer", "delete", customer["id"], "--yes")
    deleted = migrated.run("accesskey", "list", "--customer-id", customer["id"])
    assert deleted.returncode == 1
    assert deleted.stdout == ""
    assert "customer was not found" in deleted.stderr


def test_a_command_says_which_database_it_opened_and_that_it_is_new(
    workspace: Workspace,
) -> None:
    missing = workspace.run("accesskey", "list", "--customer-id", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert f"there is no keyplane database at {workspace.db_path}" in missing.stderr
    assert "keyplane migrate" in missing.stderr
    assert not workspace.db_path.exists()  # no empty database left behind
    created = workspace.run("migrate")
    assert created.returncode == 0, created.stderr
    records = [json.loads(line) for line in created.stderr.splitlines() if line.startswith("{")]
    assert any(
        record.get("event") == "created a new database"
        and record.get("database") == str(workspace.db_path)
        for record in records
    ), created.stderr
    again = workspace.run("migrate")
    assert "created a new database" not in again.stderr
    for result in (created, again):  # alembic's dialect notes say nothing to an operator
        assert "Context impl" not in result.stderr
        assert "Will assume" not in result.stderr


def test_commands_write_nothing_to_stderr_when_all_is_well(migrated: Workspace) -> None:
    created = migrated.run("customer", "create", "--name", "quiet")
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    listed = migrated.run("accesskey", "list", "--customer-id", str(uuid.uuid4()))
    assert "alembic" not in listed.stderr
    assert "Context impl" not in listed.stderr


def test_help_has_no_type_placeholders(workspace: Workspace) -> None:
    results = workspace.run_many(*(((*command, "--help"), None) for command in COMMANDS))
    for command, result in zip(COMMANDS, results, strict=True):
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: keyplane" in result.stdout
        for placeholder in ("<bool>", "<str>", "<int>"):
            assert placeholder not in result.stdout, (command, result.stdout)


def test_the_table_shows_full_ids_and_no_always_empty_columns(migrated: Workspace) -> None:
    customer = migrated.run_json("customer", "create", "--name", "acme")
    keys = [
        migrated.run_json(
            "accesskey", "create", "--customer-id", customer["id"], "--expire", "86400"
        )["id"],
        migrated.run_json(
            "accesskey",
            "create",
            "--customer-id",
            customer["id"],
            "--expire",
            "86400",
            "--name",
            "named",
        )["id"],
    ]
    returncode, raw = run_in_pty(
        migrated, "accesskey", "list", "--customer-id", customer["id"], columns=80
    )
    output = raw.decode("utf-8", errors="replace")
    assert returncode == 0, output
    for key_id in keys:
        assert key_id in output, output
    assert customer["id"] in output  # in the title, once
    for absent in ("customer_id", "tm_delete", "…"):
        assert absent not in output, output
    assert "named" in output
    returncode, raw = run_in_pty(migrated, "accesskey", "delete", keys[0], columns=80)
    assert returncode == 0
    assert keys[0] in raw.decode("utf-8", errors="replace")
