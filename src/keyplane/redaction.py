"""Removes credentials from anything that is about to be logged.

Applied to every log record of every logger (keyplane's, uvicorn's access and
error logs, SQLAlchemy's), to structured values and to the final line:

- query and cookie parameters named ``accesskey``, ``token`` or ``password``,
  also when the name or the value is percent-encoded;
- anything shaped like an access key, a JWT or an argon2 hash, wherever it
  stands, also percent-encoded in any way: once, twice or three times, any
  characters of it, in upper or lower case (a run of URL characters that holds
  such a secret once decoded is replaced whole);
- ``Authorization`` values (``Bearer …``, ``Basic …``);
- structured fields whose name says they hold a secret.

Log lines carry text that clients chose, so every step here is linear in the
length of its input, and the input is bounded first: a value longer than
``FIELD_LIMIT`` characters is cut, the cut is marked, and the cut never
leaves the beginning of a secret behind (see :func:`cut`). The patterns have
no overlapping quantifiers, and the two searches that could restart on every
candidate (parameter names, JWTs) are written as single left-to-right scans.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, unquote_plus

REDACTED = "[REDACTED]"
FIELD_LIMIT = 8 * 1024
TRACEBACK_LIMIT = 64 * 1024
CUT_MARKER = "[CUT {} characters]"
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

# The `=` between a parameter's name and value, also percent-encoded once or more.
_EQUALS = re.compile(r"=|%(?:25)*3[dD]")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~%+-")
_DECODED_NAME_CHARS = _NAME_CHARS - {"%", "+"}
_VALUE = re.compile(r"[^&\s\"'#;,<>\\]*")
# A quoted value (password="a b"): up to its closing quote, or the end of the line.
_QUOTED_VALUE = re.compile(r"\"([^\"\n]*)\"?|'([^'\n]*)'?")
# No secret (parameter value, key, JWT, Bearer credential) spans one of these.
_SECRET_BOUNDARY = frozenset(" \t\n\r\f\v\"'&;,#<>\\")
# "_" and "." may arrive percent-encoded, once or more (%5F, %255F, ...).
_ACCESSKEY = re.compile(r"vb(?:_|%(?:25)*5[fF])[A-Za-z0-9]{6,}")
_JWT = re.compile(
    r"eyJ[A-Za-z0-9_\-]*(?:\.|%(?:25)*2[eE])[A-Za-z0-9_\-]*(?:\.|%(?:25)*2[eE])[A-Za-z0-9_\-]*"
)
_BASE64URL_RUN = re.compile(r"[A-Za-z0-9_\-]*")
_PASSWORD_HASH = re.compile(r"\$argon2(?:id|i|d)\$[^\s'\"]+")
# A run of the characters a percent-encoded secret is written with.
_URL_RUN = re.compile(r"[A-Za-z0-9_.~+%\-]*")
# Decoding never lengthens a run, and no secret worth hiding is shorter ("vb_" + 6).
_SHORTEST_SECRET = 9
_URL_RUN_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~+%-"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9._~+/=\-%]+")


def cut(text: str, limit: int = FIELD_LIMIT) -> tuple[str, str]:
    """``text`` bounded to ``limit`` characters: (what is kept, the marker, or "").

    What is kept ends at a character no secret contains, so a key, a JWT or
    a parameter's value that the limit would split is dropped whole, never
    left half-shown where redaction could no longer recognise it.
    """
    if len(text) <= limit:
        return text, ""
    end = limit
    while end > 0 and text[end - 1] not in _SECRET_BOUNDARY:
        end -= 1
    return text[:end], CUT_MARKER.format(len(text) - end)


def _sensitive_name(name: str) -> bool:
    name = _decoded(name, unquote_plus)
    start = len(name)  # the name proper is what follows any separator it was decoded with
    while start > 0 and name[start - 1] in _DECODED_NAME_CHARS:
        start -= 1
    return name[start:].lower() in SENSITIVE_PARAMETERS


def _redact_parameters(text: str) -> str:
    """Replaces the values of parameters with a sensitive name, in one scan.

    A name is the run of name characters before an `=`, and never reaches
    back past the previous `=`, so every character is looked at a bounded
    number of times.
    """
    parts: list[str] = []
    copied = floor = 0
    for equals in _EQUALS.finditer(text):
        start, end = equals.span()
        if start < floor:  # inside a value already redacted
            continue
        name_start = start
        while name_start > floor and text[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        floor = end
        if name_start == start or not _sensitive_name(text[name_start:start]):
            continue
        quoted = _QUOTED_VALUE.match(text, end)
        if quoted is not None:
            group = quoted.lastindex or 1
            if quoted.group(group):
                parts += (text[copied : quoted.start(group)], REDACTED)
                copied = quoted.end(group)
            floor = quoted.end()
            continue
        value = _VALUE.match(text, end)
        if value is None or value.end() == end:
            continue
        parts += (text[copied:end], REDACTED)
        copied = floor = value.end()
    return "".join(parts) + text[copied:] if parts else text


def _redact_jwts(text: str) -> str:
    """``_JWT.sub(REDACTED, text)``, without trying again inside a run that failed.

    Every ``eyJ`` in one run of base64url characters reaches the same end
    of that run, so when the first cannot start a JWT, none of them can.
    """
    parts: list[str] = []
    copied = 0
    found = text.find("eyJ")
    while found != -1:
        jwt = _JWT.match(text, found)
        if jwt is not None:
            parts += (text[copied:found], REDACTED)
            copied = resume = jwt.end()
        else:
            run = _BASE64URL_RUN.match(text, found)
            resume = run.end() if run is not None else found + 3
        found = text.find("eyJ", resume)
    return "".join(parts) + text[copied:] if parts else text


def _decoded(run: str, decode: Callable[[str], str] = unquote) -> str:
    """``run`` percent-decoded until nothing changes (at most three times)."""
    for _ in range(3):
        decoded = decode(run)
        if decoded == run:
            break
        run = decoded
    return run


def _redact_encoded(text: str) -> str:
    """Replaces each run of URL characters with an escape in it that, decoded, holds a secret.

    A client may percent-encode any character of a key or a JWT (``%76%62%5F…``),
    and a server library may log the path as it came. Each character is looked
    at a bounded number of times: runs are found from their ``%`` and never overlap.
    """
    parts: list[str] = []
    copied = searched = 0
    found = text.find("%")
    while found != -1:
        start = found
        while start > searched and text[start - 1] in _URL_RUN_CHARACTERS:
            start -= 1
        run = _URL_RUN.match(text, found)
        end = run.end() if run is not None else found + 1
        if end - start >= _SHORTEST_SECRET:
            decoded = _decoded(text[start:end])
            if _plain_shapes(decoded) != decoded:
                parts += (text[copied:start], REDACTED)
                copied = end
        searched = end
        found = text.find("%", end)
    return "".join(parts) + text[copied:] if parts else text


def _plain_shapes(text: str) -> str:
    if "eyJ" in text:
        text = _redact_jwts(text)
    if "$argon2" in text:
        text = _PASSWORD_HASH.sub(REDACTED, text)
    return _ACCESSKEY.sub(REDACTED, text) if "vb" in text else text


def redact_shapes(text: str) -> str:
    """Removes what looks like an access key, a JWT or a password hash, in any encoding."""
    if "%" in text:
        text = _redact_encoded(text)
    return _plain_shapes(text)


def redact_text(text: str, limit: int = FIELD_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, then every credential in it replaced."""
    text, marker = cut(text, limit)
    if "=" in text or "%" in text:
        text = _redact_parameters(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return redact_shapes(text) + marker


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
