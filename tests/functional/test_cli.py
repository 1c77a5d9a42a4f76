"""The command line interface, through the real ``keyplane`` console script.

stdout is a pipe (not a TTY), so every command prints JSON. Each subprocess
costs about a second, so one migrated installation is shared by the module
and the number of invocations is kept small.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyplane.domain.tokens import hash_token
from keyplane.domain.views import EXPANDABLE
from keyplane.errors import KeyplaneError
from keyplane.services.container import build_services
from tests.conftest import make_settings
from tests.factories import ACCESSKEY_FIELDS, CUSTOMER_FIELDS
from tests.functional.conftest import CLI_TIMEOUT, TOKEN_RE, Workspace, clean_env, free_port

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PW_ONE = "pw-one, long enough"
PW_TWO = "pw-two, long enough"


def parse_ts(value: str) -> datetime:
    assert isinstance(value, str)
    assert len(value) == len("2026-12-01T10:15:30.123456Z"), value
    return datetime.strptime(value, TIMESTAMP_FORMAT)


def _login_results(data_dir: Path, attempts: list[tuple[str, str]]) -> list[str]:
    """Try each (username, password) with the real services on the CLI's database.

    Each result is "ok" or the refusal's reason.
    """

    async def run() -> list[str]:
        services = build_services(make_settings(data_dir))
        try:
            results = []
            for username, password in attempts:
                try:
                    await services.auth.login(username, password)
                except KeyplaneError as error:
                    results.append(error.reason)
                else:
                    results.append("ok")
            return results
        finally:
            await services.close()

    return asyncio.run(run())


def _accesskey_authenticates(data_dir: Path, token: str) -> bool:
    async def run() -> bool:
        services = build_services(make_settings(data_dir))
        try:
            await services.auth.authenticate_accesskey(token)
        except KeyplaneError:
            return False
        finally:
            await services.close()
        return True

    return asyncio.run(run())


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One installation for the module; migrated by the first test that needs it."""
    root = tmp_path_factory.mktemp("cli")
    ws = Workspace(cwd=root / "cwd", data_dir=root / "data")
    ws.cwd.mkdir()
    ws.data_dir.mkdir()
    return ws


@pytest.fixture(scope="module")
def migrated(cli: Workspace) -> Workspace:
    # Before migrating, a command says what to do instead of failing obscurely.
    before = cli.run("accesskey", "list", "--customer-id", str(uuid.uuid4()))
    assert before.returncode == 1, before
    assert "keyplane migrate" in before.stderr, before.stderr
    assert "Traceback" not in before.stderr
    assert before.stdout == ""

    result = cli.run("migrate")
    assert result.returncode == 0, result.stderr
    assert "revision" in result.stderr
    assert "Traceback" not in result.stderr
    return cli


@pytest.fixture(scope="module")
def customer(migrated: Workspace) -> dict[str, Any]:
    data = migrated.run_json(
        "customer", "create", "--name", "Acme", "--email", "ops@example.com", "--detail", "d1"
    )
    assert isinstance(data, dict)
    return data


def test_customer_create_prints_the_customer(customer: dict[str, Any]) -> None:
    # VoIPBIN's customer object: empty phone, address and webhook fields are left out.
    left_out = {"phone_number", "address", "webhook_method", "webhook_uri"}
    assert set(customer) == CUSTOMER_FIELDS - left_out
    uuid.UUID(customer["id"])
    assert customer["name"] == "Acme"
    assert customer["email"] == "ops@example.com"
    assert customer["detail"] == "d1"
    parse_ts(customer["tm_create"])
    assert customer["tm_update"] is None
    assert customer["tm_delete"] is None


@pytest.fixture(scope="module")
def agents(migrated: Workspace, customer: dict[str, Any]) -> list[subprocess.CompletedProcess[str]]:
    common = ("agent", "create", "--customer-id", customer["id"], "--permission", "32")
    return migrated.run_many(
        ((*common, "--username", "stdin-one", "--password-stdin"), PW_ONE + "\n"),
        ((*common, "--username", "stdin-two", "--password-stdin"), PW_TWO + "\n\n"),
        ((*common, "--username", "generated"), None),
        ((*common, "--username", "empty", "--password-stdin"), "\n"),
        ((*common, "--username", "short", "--password-stdin"), "pw-short\n"),
        ((*common, "--username", "common", "--password-stdin"), "qwertyuiop123\n"),
    )


def test_agent_create_passwords(
    migrated: Workspace,
    customer: dict[str, Any],
    agents: list[subprocess.CompletedProcess[str]],
) -> None:
    *created, empty, short, common = agents
    # An empty password on stdin is refused.
    assert empty.returncode == 2, empty
    assert "password" in empty.stderr
    assert empty.stdout == ""
    # So are a short one and a common one, saying why.
    assert short.returncode == 1, short
    assert "PASSWORD_TOO_SHORT" in short.stderr
    assert "at least 12" in short.stderr
    assert common.returncode == 1, common
    assert "PASSWORD_TOO_COMMON" in common.stderr
    assert short.stdout == common.stdout == ""
    for result in created:
        assert result.returncode == 0, result.stderr
        assert "$argon2" not in result.stdout
        assert "$argon2" not in result.stderr
    one = created[0]
    agent_one, agent_two, agent_gen = (json.loads(r.stdout) for r in created)
    for agent in (agent_one, agent_two, agent_gen):
        assert "password_hash" not in agent
        assert agent["customer_id"] == customer["id"]
        assert agent["permission"] == 32
        uuid.UUID(agent["id"])
    assert agent_one["username"] == "stdin-one"
    # A password read from stdin is never echoed back.
    assert "password" not in agent_one
    assert "password" not in agent_two
    assert PW_ONE not in one.stdout
    assert PW_ONE not in one.stderr
    # Without --password-stdin, a generated password is shown once.
    password = agent_gen["password"]
    assert isinstance(password, str)
    assert len(password) >= 16

    # Exactly one trailing newline is dropped: "pw\n" -> "pw", "pw\n\n" -> "pw\n".
    assert _login_results(
        migrated.data_dir,
        [
            ("stdin-one", PW_ONE),
            ("stdin-one", PW_ONE + "\n"),
            ("stdin-two", PW_TWO + "\n"),
            ("stdin-two", PW_TWO),
            ("generated", password),
        ],
    ) == ["ok", "INVALID_CREDENTIALS", "ok", "INVALID_CREDENTIALS", "ok"]


def test_agent_create_accepts_only_documented_permission_bits(
    migrated: Workspace, customer: dict[str, Any]
) -> None:
    common = ("agent", "create", "--customer-id", customer["id"])
    refused = migrated.run_many(
        ((*common, "--username", "seven", "--permission", "7"), None),
        ((*common, "--username", "one", "--permission", "1"), None),
        ((*common, "--username", "all", "--permission", "65535"), None),
        ((*common, "--username", "odd", "--permission", "128"), None),
        ((*common, "--username", "none"), None),
        # Super admin asked for, but not confirmed (stdin is not a terminal).
        ((*common, "--username", "unconfirmed", "--super-admin"), None),
    )
    for result in refused:
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
    assert "--super-admin" in refused[0].stderr
    assert "--super-admin" in refused[1].stderr
    assert "--yes" in refused[5].stderr
    manager, admin, chief = migrated.run_many(
        ((*common, "--username", "manager", "--permission", "96"), None),
        ((*common, "--username", "plain-admin", "--permission", "32"), None),
        ((*common, "--username", "chief", "--super-admin", "--yes"), None),
    )
    assert json.loads(manager.stdout)["permission"] == 96
    assert json.loads(admin.stdout)["permission"] == 32
    assert chief.returncode == 0, chief.stderr
    assert json.loads(chief.stdout)["permission"] == 1
    assert "WARNING" in chief.stderr
    assert "every customer" in chief.stderr


def test_agent_create_duplicate_username(
    migrated: Workspace,
    customer: dict[str, Any],
    agents: list[subprocess.CompletedProcess[str]],
) -> None:
    assert agents[2].returncode == 0, agents[2].stderr
    second = migrated.run(
        "agent",
        "create",
        "--customer-id",
        customer["id"],
        "--permission",
        "16",
        "--username",
        "generated",
    )
    assert second.returncode == 1, second
    assert "error" in second.stderr.lower()
    assert "error: This username is taken" in second.stderr
    assert "(USERNAME_TAKEN)" in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stdout == ""


def test_accesskeys_create_list_delete(migrated: Workspace, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    older = migrated.run_json(
        "accesskey", "create", "--customer-id", cid, "--expire", "86400", "--name", "n1"
    )
    newer = migrated.run_json(
        "accesskey",
        "create",
        "--customer-id",
        cid,
        "--expire",
        "172800",
        "--name",
        "n2",
        "--detail",
        "reporting",
    )
    for key, expire, name in ((older, 86400, "n1"), (newer, 172800, "n2")):
        assert set(key) == ACCESSKEY_FIELDS | {"token"}
        assert key["customer_id"] == cid
        assert key["name"] == name
        assert TOKEN_RE.fullmatch(key["token"])
        assert key["token_prefix"] == key["token"][:11]
        assert parse_ts(key["tm_expire"]) - parse_ts(key["tm_create"]) == timedelta(seconds=expire)
        assert key["tm_update"] is None
        assert key["tm_delete"] is None
    assert older["detail"] == ""
    assert newer["detail"] == "reporting"

    listed = migrated.run_json("accesskey", "list", "--customer-id", cid)
    assert isinstance(listed, list)
    assert [k["id"] for k in listed[:2]] == [newer["id"], older["id"]], "newest first"
    for key in listed:
        # The command line shows what the API shows with ?expand=all.
        assert set(key) == ACCESSKEY_FIELDS | set(EXPANDABLE)
        assert "token" not in key
    for key in listed[:2]:  # the two just made (other tests may have used older keys)
        assert key["tm_last_used"] is None
        assert key["tm_disable"] is None
    listed_text = json.dumps(listed)
    assert older["token"] not in listed_text
    assert newer["token"] not in listed_text

    deleted = migrated.run_json("accesskey", "delete", older["id"])
    assert deleted["id"] == older["id"]
    assert "token" not in deleted
    assert deleted["tm_delete"] is not None
    parse_ts(deleted["tm_delete"])

    assert not _accesskey_authenticates(migrated.data_dir, older["token"])
    assert _accesskey_authenticates(migrated.data_dir, newer["token"])

    # The database holds the hash only.
    raw = b"".join(p.read_bytes() for p in migrated.data_dir.glob("keyplane.db*") if p.is_file())
    for key in (older, newer):
        assert key["token"].encode() not in raw
        assert hash_token(key["token"]).encode() in raw


def test_accesskey_lifecycle_commands(migrated: Workspace, customer: dict[str, Any]) -> None:
    created = migrated.run_json(
        "accesskey", "create", "--customer-id", customer["id"], "--expire", "864000", "--name", "r"
    )
    key_id, token = created["id"], created["token"]

    disabled = migrated.run_json("accesskey", "disable", key_id)
    assert disabled["tm_disable"] is not None
    assert not _accesskey_authenticates(migrated.data_dir, token)
    enabled = migrated.run_json("accesskey", "enable", key_id)
    assert enabled["tm_disable"] is None
    assert _accesskey_authenticates(migrated.data_dir, token)

    sooner = parse_ts(created["tm_expire"]) - timedelta(days=1)
    shortened = migrated.run_json(
        "accesskey", "expire", key_id, "--tm-expire", sooner.strftime(TIMESTAMP_FORMAT)
    )
    assert parse_ts(shortened["tm_expire"]) == sooner
    longer, malformed = migrated.run_many(
        (("accesskey", "expire", key_id, "--tm-expire", created["tm_expire"]), None),
        (("accesskey", "expire", key_id, "--tm-expire", "next week"), None),
    )
    assert longer.returncode == 1, longer
    assert "EXPIRE_NOT_SHORTER" in longer.stderr
    assert malformed.returncode == 2, malformed
    assert "Traceback" not in longer.stderr + malformed.stderr

    rotated = migrated.run_json("accesskey", "rotate", key_id, "--grace", "0")
    assert TOKEN_RE.fullmatch(rotated["token"])
    assert rotated["name"] == "r"
    assert parse_ts(rotated["tm_expire"]) - parse_ts(rotated["tm_create"]) == timedelta(days=9)
    assert _accesskey_authenticates(migrated.data_dir, rotated["token"])
    assert not _accesskey_authenticates(migrated.data_dir, token)
    shown = migrated.run_json("accesskey", "show", key_id)
    assert shown["rotated_to"] == rotated["id"]
    assert set(shown) == ACCESSKEY_FIELDS | set(EXPANDABLE)
    assert token not in json.dumps(shown)


def test_accesskey_create_with_scopes(migrated: Workspace, customer: dict[str, Any]) -> None:
    args = ("accesskey", "create", "--customer-id", customer["id"], "--expire", "86400")
    rules = '[{"methods": ["GET"], "path_prefix": "/v1.0/calls"}]'
    read_only, ruled, malformed = migrated.run_many(
        ((*args, "--scopes", "read_only"), None),
        ((*args, "--scopes", rules), None),
        ((*args, "--scopes", '[{"methods": ["GET"]}]'), None),
    )
    assert read_only.returncode == 0, read_only.stderr
    assert json.loads(read_only.stdout)["scopes"] == [
        {"methods": ["GET", "HEAD", "OPTIONS"], "path_prefix": "/"}
    ]
    assert ruled.returncode == 0, ruled.stderr
    assert json.loads(ruled.stdout)["scopes"] == json.loads(rules)
    assert malformed.returncode == 2, malformed
    assert "path_prefix" in malformed.stderr
    assert "Traceback" not in malformed.stderr


def test_accesskey_create_with_an_ip_allowlist(
    migrated: Workspace, customer: dict[str, Any]
) -> None:
    args = ("accesskey", "create", "--customer-id", customer["id"], "--expire", "86400")
    listed, malformed = migrated.run_many(
        ((*args, "--allowed-networks", "198.51.100.0/24, 2001:db8::/32"), None),
        ((*args, "--allowed-networks", "198.51.100.7/24"), None),
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["allowed_networks"] == ["198.51.100.0/24", "2001:db8::/32"]
    assert malformed.returncode == 2, malformed
    assert "CIDR" in malformed.stderr


def test_webhook_deliveries(migrated: Workspace, customer: dict[str, Any]) -> None:
    """A key change records an event; nothing delivers it here, so it is pending."""
    migrated.run_json("accesskey", "create", "--customer-id", customer["id"], "--expire", "86400")
    deliveries = migrated.run_json("webhook", "deliveries", "--customer-id", customer["id"])
    assert isinstance(deliveries, list)
    assert deliveries[0]["type"] == "accesskey_created"
    for item in deliveries:
        assert set(item) == {
            "id",
            "type",
            "status",
            "attempts",
            "last_error",
            "tm_create",
            "tm_next_attempt",
            "tm_delivered",
        }
        assert item["status"] == "pending"
        assert item["type"].startswith("accesskey_")


def test_audit_list(migrated: Workspace, customer: dict[str, Any]) -> None:
    created = migrated.run_json(
        "accesskey", "create", "--customer-id", customer["id"], "--expire", "86400"
    )
    entries = migrated.run_json(
        "audit", "list", "--customer-id", customer["id"], "--type", "accesskey_created"
    )
    assert entries[0]["subject_id"] == created["id"]
    assert entries[0]["actor"]["type"] == "operator"
    assert entries[0]["address"] == ""
    assert {entry["type"] for entry in entries} == {"accesskey_created"}
    assert created["token"] not in json.dumps(entries)


def test_accesskey_create_rejects_expire_out_of_range(
    migrated: Workspace, customer: dict[str, Any]
) -> None:
    args = ("accesskey", "create", "--customer-id", customer["id"], "--expire")
    too_short, too_long = migrated.run_many(((*args, "86399"), None), ((*args, str(2**31)), None))
    for result in (too_short, too_long):
        assert result.returncode == 1, result
        assert "error" in result.stderr.lower()
        assert "86400" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""


def test_accesskey_delete_errors(migrated: Workspace) -> None:
    pasted_token = "vb" + "_" + "Zq7" * 10 + "Xy"  # a token given where the id belongs
    unknown, malformed, token_as_id = migrated.run_many(
        (("accesskey", "delete", str(uuid.uuid4())), None),
        (("accesskey", "delete", "not-a-uuid"), None),
        (("accesskey", "delete", pasted_token), None),
    )
    assert unknown.returncode == 1, unknown
    assert "not found" in unknown.stderr.lower()
    assert unknown.stdout == ""

    assert malformed.returncode == 2, malformed
    assert "UUID" in malformed.stderr
    assert "Traceback" not in malformed.stderr
    assert malformed.stdout == ""

    # A credential never appears in an error message, even one pasted by mistake.
    assert token_as_id.returncode == 2, token_as_id
    assert "UUID" in token_as_id.stderr
    assert pasted_token not in token_as_id.stderr, token_as_id.stderr
    assert pasted_token[3:] not in token_as_id.stderr, token_as_id.stderr


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    cwd, data_dir = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    (data_dir / "keyplane.db").mkdir(parents=True)  # a directory: SQLite cannot open it
    ws = Workspace(cwd=cwd, data_dir=data_dir)
    migrate, create = ws.run_many(
        (("migrate",), None), (("customer", "create", "--name", "x"), None)
    )
    for result in (migrate, create):
        assert result.returncode == 3, result  # the database is unavailable
        assert result.stderr.startswith("error:"), result.stderr[-2000:]
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "KEYPLANE_DATABASE_URL" in result.stderr


def test_python_dash_m_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keyplane", "--help"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "customer", "agent", "accesskey"):
        assert command in result.stdout


def test_short_jwt_secret_is_a_configuration_error(tmp_path: Path) -> None:
    short = "too-short-secret-" + "q" * 6  # 23 bytes
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ws = Workspace(cwd=cwd, data_dir=tmp_path / "data", env_overrides={})
    result = ws.run("migrate", env=clean_env(ws.data_dir, KEYPLANE_JWT_SECRET=short))
    assert result.returncode == 2, result
    assert "KEYPLANE_JWT_SECRET" in result.stderr
    assert "32" in result.stderr
    assert "Traceback" not in result.stderr
    # The message describes the secret; it never repeats it.
    assert short not in result.stderr
    assert short not in result.stdout


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / ".env").write_text("KEYPLANE_JWT_SECRET=short-in-dotenv\n")
    ws = Workspace(cwd=cwd, data_dir=tmp_path / "data")
    result = ws.run("migrate")
    assert result.returncode == 2, result
    assert "KEYPLANE_JWT_SECRET" in result.stderr
    assert "short-in-dotenv" not in result.stderr


def test_a_delete_goes_through_when_redis_does_not_answer(migrated: Workspace) -> None:
    customer = migrated.run_json("customer", "create", "--name", "unheard")
    key = migrated.run_json(
        "accesskey", "create", "--customer-id", customer["id"], "--expire", "86400"
    )
    # Redis configured but not answering: the deletion is saved, with its entry in the
    # revocation log that every replica follows; the outage is logged, not fatal.
    env = {**migrated.env, "KEYPLANE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = migrated.run("accesskey", "delete", key["id"], env=env)
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["tm_delete"] is not None
    assert "redis_unavailable" in result.stderr
    assert "Traceback" not in result.stderr
    listed = migrated.run_json("accesskey", "list", "--customer-id", customer["id"])
    assert listed == []
