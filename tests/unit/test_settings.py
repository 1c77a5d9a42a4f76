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
