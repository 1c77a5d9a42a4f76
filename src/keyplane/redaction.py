"""Removes credentials from anything that is about to be logged.

Applied to every log record of every logger (keyplane's, uvicorn's access and
error logs, SQLAlchemy's), to structured values and to the final line:

- query and cookie parameters named ``accesskey``, ``token`` or ``password``,
  also when the name or the value is percent-encoded;
- anything shaped like an access key, a JWT or an argon2 hash, wherever it
  stands (also percent-encoded once or twice);
- ``Authorization`` values (``Bearer …``, ``Basic …``);
- structured fields whose name says they hold a secret.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"
SENSITIVE_PARAMETERS = frozenset({"accesskey", "token", "password", "access_token"})
SENSITIVE_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "password",
        "token",
        "accesskey",
        "access_token",
        "jwt",
        "jwt_secret",
        "secret",
    }
)

_PARAMETER = re.compile(
    r"(?P<name>[A-Za-z0-9_.~%+\-]+)(?P<eq>=|%(?:25)*3[dD])(?P<value>[^&\s\"'#;,<>\\]*)"
)
# "_" and "." may arrive percent-encoded, once or more (%5F, %255F, ...).
_ACCESSKEY = re.compile(r"vb(?:_|%(?:25)*5[fF])[A-Za-z0-9]{6,}")
_DOT = r"(?:\.|%(?:25)*2[eE])"
_JWT = re.compile(rf"eyJ[A-Za-z0-9_\-]*{_DOT}[A-Za-z0-9_\-]*{_DOT}[A-Za-z0-9_\-]*")
_PASSWORD_HASH = re.compile(r"\$argon2(?:id|i|d)\$[^\s'\"]+")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=\-%]+")


def _decoded_name(name: str) -> str:
    for _ in range(3):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.lower()


def _redact_parameter(match: re.Match[str]) -> str:
    if _decoded_name(match.group("name")) in SENSITIVE_PARAMETERS and match.group("value"):
        return f"{match.group('name')}{match.group('eq')}{REDACTED}"
    return match.group(0)


def redact_shapes(text: str) -> str:
    """Removes what looks like an access key, a JWT or a password hash."""
    text = _JWT.sub(REDACTED, text)
    text = _PASSWORD_HASH.sub(REDACTED, text)
    return _ACCESSKEY.sub(REDACTED, text)


def redact_text(text: str) -> str:
    if "=" in text or "%3" in text:
        text = _PARAMETER.sub(_redact_parameter, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return redact_shapes(text)


def redact_value(value: Any) -> Any:
    """Redacts strings, and containers recursively; other values pass unchanged."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and key.lower() in SENSITIVE_FIELDS
            else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value
