"""Every setting keyplane cannot use stops it with one line naming the setting, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyplane.cli.local import load_settings, prepare_directories
from keyplane.settings import Settings

UNWRITABLE = "/proc/keyplane-cannot-be-here"

BAD_VALUES: list[tuple[str, str]] = [
    ("DATABASE_URL", "nonsense"),
    ("DATABASE_URL", "mysql://user@host/keyplane"),
    ("DATABASE_URL", "postgresql://user@host/keyplane"),
    ("DATABASE_URL", "postgresql+asyncpg://user@127.0.0.1:notaport/keyplane"),
    ("DATABASE_URL", f"sqlite+aiosqlite:///{UNWRITABLE}/keyplane.db"),
    ("DATA_DIR", UNWRITABLE),
    ("DATA_DIR", "{file}"),
    ("JWT_SECRET", "too-short"),
    ("SESSION_TTL", "abc"),
    ("SESSION_TTL", "10"),
    ("ACCESSKEY_MAX_EXPIRE", "5"),
    ("ACCESSKEY_MAX_EXPIRE", "9999999999"),
    ("SESSION_COOKIE_SECURE", "maybe"),
    ("BOOTSTRAP", "maybe"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("ARGON2_MEMORY_KIB", "1"),
    ("ARGON2_MEMORY_KIB", "lots"),
    ("ARGON2_TIME_COST", "1"),
    ("ARGON2_PARALLELISM", "0"),
    ("PASSWORD_HASH_CONCURRENCY", "0"),
    ("DATABASE_POOL_SIZE", "0"),
    ("DATABASE_TIMEOUT", "0"),
    ("DATABASE_TIMEOUT", "soon"),
    ("REDIS_URL", "nonsense"),
    ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ("REDIS_URL", "redis://127.0.0.1:notaport/0"),
    ("REDIS_URL", "redis:///0"),
    ("CACHE_TTL", "-1"),
    ("CACHE_FALLBACK_TTL", "2"),
    ("CACHE_NEGATIVE_TTL", "-1"),
    ("CACHE_MAX_ENTRIES", "-1"),
    ("VERIFY_MISS_CONCURRENCY", "0"),
    ("VERIFY_MISS_QUEUE", "-1"),
    ("RATELIMIT_CUSTOMER_PER_SECOND", "0"),
    ("RATELIMIT_CUSTOMER_BURST", "0"),
    ("RATELIMIT_AUTH_FAILURES_PER_MINUTE", "0"),
    ("RATELIMIT_AUTH_FAILURES_BURST", "0"),
    ("RATELIMIT_LOGIN_FAILURES_PER_MINUTE", "0"),
    ("RATELIMIT_LOGIN_FAILURES_BURST", "0"),
    ("TRUSTED_PROXIES", "127.0.0.1,not-an-address"),
    ("METRICS_TOKEN", "a\ttab"),
    ("LAST_USED_FLUSH_INTERVAL", "0"),
    ("MAX_HEADER_BYTES", "10"),
    ("HEADER_TIMEOUT", "0"),
    ("BODY_TIMEOUT", "0"),
    ("MAX_CONNECTIONS", "0"),
    ("ACCESSKEY_EXPIRING_NOTICE_DAYS", "soon"),
    ("ACCESSKEY_EXPIRING_NOTICE_DAYS", "400"),
    ("ACCESSKEY_EXPIRING_SCAN_INTERVAL", "0"),
    ("AUDIT_RETENTION_DAYS", "0"),
    ("EVENT_RETENTION_DAYS", "0"),
    ("WEBHOOK_ALLOWED_NETWORKS", "not-a-network"),
    ("WEBHOOK_KEY", "too-short"),
    ("WEBHOOK_TIMEOUT", "61"),
    ("WEBHOOK_MAX_BODY_BYTES", "10"),
    ("WEBHOOK_MAX_ATTEMPTS", "0"),
    ("WEBHOOK_BACKOFF_BASE", "0"),
    ("WEBHOOK_BACKOFF_MAX", "0"),
    ("WEBHOOK_POLL_INTERVAL", "0"),
    ("WEBHOOK_LEASE_SECONDS", "0"),
]


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("KEYPLANE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env, and ./data is the test's own
    return tmp_path


def test_the_table_covers_every_setting() -> None:
    assert {name.lower() for name, _ in BAD_VALUES} == set(Settings.model_fields)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(
    clean_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
) -> None:
    a_file = clean_environment / "a-file"
    a_file.write_text("")
    monkeypatch.setenv(f"KEYPLANE_{name}", value.format(file=a_file))
    with pytest.raises(SystemExit) as stopped:
        prepare_directories(load_settings())  # as a command that goes on reads them
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first.startswith("error: ")
    assert f"KEYPLANE_{name}" in first
    assert all(line.startswith("hint: ") for line in rest), err


def test_good_settings_pass_and_loading_them_writes_nothing(clean_environment: Path) -> None:
    settings = load_settings()
    assert settings.database_url == Settings.model_fields["database_url"].default
    assert list(clean_environment.iterdir()) == []  # the data directory comes later, if at all
    prepare_directories(settings)
    assert (clean_environment / "data").is_dir()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "nonsense"),
        ("REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("DATA_DIR", UNWRITABLE),
    ],
)
def test_the_command_line_prints_no_traceback(tmp_path: Path, name: str, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env[f"KEYPLANE_{name}"] = value
    done = subprocess.run(
        [sys.executable, "-m", "keyplane", "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: ")
    assert f"KEYPLANE_{name}" in first
