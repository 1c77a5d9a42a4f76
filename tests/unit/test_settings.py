from __future__ import annotations

import stat
from pathlib import Path

import pytest

from keyplane.settings import ConfigurationError
from tests.conftest import make_settings


def test_generated_secret_is_kept_with_mode_0600(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", jwt_secret=None)
    first = settings.resolve_jwt_secret()
    path = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first) >= 32
    assert settings.resolve_jwt_secret() == first


def test_short_configured_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        make_settings(tmp_path, jwt_secret="too-short").resolve_jwt_secret()


def test_short_stored_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("short")
    with pytest.raises(ConfigurationError, match="at least 32"):
        make_settings(tmp_path, jwt_secret=None).resolve_jwt_secret()


def test_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyplane.settings import Settings

    monkeypatch.setenv("KEYPLANE_SESSION_TTL", "3600")
    monkeypatch.setenv("KEYPLANE_ACCESSKEY_MAX_EXPIRE", "172800")
    settings = Settings(_env_file=None)
    assert settings.session_ttl == 3600
    assert settings.accesskey_max_expire == 172800
    assert settings.database_url == "sqlite+aiosqlite:///./data/keyplane.db"


def test_connection_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyplane.settings import Settings
    from keyplane.web.connections import GuardedHttpToolsProtocol, apply_connection_limits

    monkeypatch.setenv("KEYPLANE_MAX_HEADER_BYTES", "4096")
    monkeypatch.setenv("KEYPLANE_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("KEYPLANE_BODY_TIMEOUT", "3")
    monkeypatch.setenv("KEYPLANE_MAX_CONNECTIONS", "7")
    settings = Settings(_env_file=None)
    assert settings.body_timeout == 3.0
    saved = GuardedHttpToolsProtocol.limits
    try:
        apply_connection_limits(settings)
        limits = GuardedHttpToolsProtocol.limits
        assert (limits.max_header_bytes, limits.header_timeout, limits.max_connections) == (
            4096,
            2.5,
            7,
        )
    finally:
        GuardedHttpToolsProtocol.limits = saved


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KEYPLANE_MAX_HEADER_BYTES", "100"),
        ("KEYPLANE_HEADER_TIMEOUT", "0"),
        ("KEYPLANE_BODY_TIMEOUT", "-1"),
        ("KEYPLANE_MAX_CONNECTIONS", "0"),
    ],
)
def test_unusable_connection_limits_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from pydantic import ValidationError

    from keyplane.settings import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


@pytest.mark.parametrize(("cpus", "expected"), [(None, 1), (1, 1), (2, 1), (8, 7)])
def test_password_hashing_leaves_the_event_loop_a_core(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, expected: int
) -> None:
    from keyplane.settings import Settings

    monkeypatch.delenv("KEYPLANE_PASSWORD_HASH_CONCURRENCY", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert Settings(_env_file=None).password_hash_concurrency == expected
    monkeypatch.setenv("KEYPLANE_PASSWORD_HASH_CONCURRENCY", "3")
    assert Settings(_env_file=None).password_hash_concurrency == 3
