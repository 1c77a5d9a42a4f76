"""The sessions ``keyplane login`` keeps: one per server, in a file only the user can read.

``$XDG_CONFIG_HOME/keyplane/sessions.json`` (``~/.config/keyplane/...`` when
the variable is unset), mode 0600 in a directory of mode 0700. It holds the
session token (a JWT), which is as good as the password until it expires:
the file is written atomically and never with wider permissions.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredSession:
    url: str
    username: str
    token: str

    def __repr__(self) -> str:
        return f"StoredSession(url={self.url!r}, username={self.username!r})"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "keyplane"


def sessions_file() -> Path:
    return config_dir() / "sessions.json"


def normalise_url(url: str) -> str:
    return url.rstrip("/")


def _read() -> dict[str, Any]:
    try:
        data = json.loads(sessions_file().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    sessions = data.get("sessions") if isinstance(data, dict) else None
    return sessions if isinstance(sessions, dict) else {}


def _write(sessions: dict[str, Any]) -> None:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = sessions_file()
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"sessions": sessions}, handle, indent=2)
        os.chmod(temporary, 0o600)  # whatever the umask said
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def load(url: str) -> StoredSession | None:
    entry = _read().get(normalise_url(url))
    if not isinstance(entry, dict) or not entry.get("token"):
        return None
    return StoredSession(normalise_url(url), str(entry.get("username", "")), str(entry["token"]))


def only_url() -> str | None:
    """The server of the one stored session, when there is exactly one."""
    sessions = _read()
    return next(iter(sessions)) if len(sessions) == 1 else None


def save(session: StoredSession) -> Path:
    sessions = _read()
    sessions[normalise_url(session.url)] = {"username": session.username, "token": session.token}
    _write(sessions)
    return sessions_file()


def remove(url: str) -> bool:
    sessions = _read()
    if sessions.pop(normalise_url(url), None) is None:
        return False
    _write(sessions)
    return True
