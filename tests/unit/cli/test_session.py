"""The sessions ``keyplane login`` keeps: under XDG_CONFIG_HOME, 0600, one per server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keyplane.cli import session

JWT = "eyJ" + "x.y.z"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "keyplane"


def test_saved_private_and_found_again(config: Path) -> None:
    old = os.umask(0o022)
    try:
        where = session.save(session.StoredSession("http://a.example/", "ann", JWT))
    finally:
        os.umask(old)
    assert where == config / "sessions.json"
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    found = session.load("http://a.example")
    assert found is not None
    assert (found.username, found.token) == ("ann", JWT)
    assert JWT not in repr(found)
    assert session.only_url() == "http://a.example"


def test_one_session_per_server(config: Path) -> None:
    session.save(session.StoredSession("http://a.example", "ann", JWT))
    session.save(session.StoredSession("http://b.example", "bob", JWT + "2"))
    assert session.only_url() is None
    assert session.remove("http://a.example")
    assert not session.remove("http://a.example")
    assert session.load("http://a.example") is None
    assert session.load("http://b.example") is not None


def test_a_wider_file_is_made_private_again(config: Path) -> None:
    config.mkdir(parents=True)
    (config / "sessions.json").write_text("{}")
    os.chmod(config / "sessions.json", 0o644)
    session.save(session.StoredSession("http://a.example", "ann", JWT))
    assert stat.S_IMODE((config / "sessions.json").stat().st_mode) == 0o600


def test_a_damaged_file_is_no_session(config: Path) -> None:
    config.mkdir(parents=True)
    (config / "sessions.json").write_text("not json")
    assert session.load("http://a.example") is None


def test_home_config_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert session.sessions_file() == tmp_path / ".config" / "keyplane" / "sessions.json"
