"""What a gateway forwards upstream once keyplane allowed a request: no credentials.

``/auth/verify`` hands the gateway the cleaned forms of the request's URI,
``Cookie`` header and ``Authorization`` header, and the gateway only copies
them: removing credentials in the gateway with regular expressions would miss
spellings that keyplane, or the framework behind the gateway, reads.

What is removed is wider than what keyplane itself reads, on purpose: every
spelling that keyplane *or a common framework* might take for a credential.

- Query parameters named ``accesskey`` or ``token``, compared without regard
  to case, after percent-decoding the name until it no longer changes (``+``
  as a space), with surrounding spaces, a NUL and anything from ``[`` on
  (PHP's and Rails' ``token[]``) ignored. ``&`` and ``;`` both separate
  parameters. A name still changing after :data:`_DECODING_ROUNDS` rounds is
  removed too: no framework decodes that often, and no honest client
  encodes that often.
- Cookies of those names, compared the same way, and every ``keyplane_*``
  cookie (the /admin page's session and login cookies). A ``;``-separated
  chunk is also read as a comma-joined list (``a=1, accesskey=…``), as old
  cookie parsers do.
- An ``Authorization`` header with the ``Bearer`` scheme (by the contract,
  every Bearer value is a keyplane credential), or whose value, or decoded
  ``Basic`` credentials, holds anything shaped like an access key or a JWT
  (``Token vb_…``, ``Basic`` of ``user:vb_…``).

Everything else is kept byte for byte and in order.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from urllib.parse import unquote_plus

CREDENTIAL_NAMES = frozenset({"accesskey", "token"})
KEYPLANE_COOKIE_PREFIX = "keyplane_"
_DECODING_ROUNDS = 8
_SEPARATOR = re.compile(r"([&;])")


def _plain_name(raw: str) -> str | None:
    """The name as a lenient parser would read it; None when it never stops decoding."""
    name = raw
    for _ in range(_DECODING_ROUNDS):
        if "%" not in name and "+" not in name:
            break
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    else:
        if unquote_plus(name) != name:
            return None
    return name.partition("\x00")[0].partition("[")[0].strip().lower()


def _is_credential_name(raw: str) -> bool:
    name = _plain_name(raw)
    return name is None or name in CREDENTIAL_NAMES


def _is_keyplane_cookie_name(raw: str) -> bool:
    name = _plain_name(raw)
    return name is None or name in CREDENTIAL_NAMES or name.startswith(KEYPLANE_COOKIE_PREFIX)


def query_without_credentials(query: str) -> str | None:
    """The query with every credential parameter removed, or None when it had none.

    The other parameters, and the separator before each, are kept byte for byte.
    """
    lowered = query.lower()
    if "accesskey" not in lowered and "token" not in lowered and "%" not in query:
        return None  # nothing to remove: the common case costs one scan
    pieces = _SEPARATOR.split(query)  # parameter, separator, parameter, ...
    kept: list[str] = []
    removed = False
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        if _is_credential_name(piece.partition("=")[0]):
            removed = True
            continue
        if not piece:
            continue
        if kept:
            kept.append(pieces[index - 1])
        kept.append(piece)
    return "".join(kept) if removed else None


def uri_without_credentials(uri: str) -> str | None:
    """``path?query`` without credential parameters, or None when there were none."""
    path, separator, query = uri.partition("?")
    if not separator:
        return None
    cleaned = query_without_credentials(query)
    if cleaned is None:
        return None
    return f"{path}?{cleaned}" if cleaned else path


def _cookie_chunk_without_credentials(chunk: str) -> str:
    """One ``;``-separated chunk, read also as a comma-joined list of cookies."""
    name, has_value, _ = chunk.partition("=")
    if has_value and _is_keyplane_cookie_name(name):
        return ""
    if "," not in chunk:
        return chunk
    parts = chunk.split(",")
    kept = [
        part
        for part in parts
        if not ("=" in part and _is_keyplane_cookie_name(part.partition("=")[0]))
    ]
    if len(kept) == len(parts):
        return chunk  # a comma inside a value: kept as it came
    return ",".join(kept).strip().strip(",").strip()


def cookie_without_credentials(cookie: str) -> str:
    """The ``Cookie`` header without credential and keyplane cookies; the others as they came."""
    kept = []
    for chunk in cookie.split(";"):
        chunk = _cookie_chunk_without_credentials(chunk.strip())
        if chunk:
            kept.append(chunk)
    return "; ".join(kept)


def _holds_credential(text: str) -> bool:
    """Anything shaped like an access key (``vb_``, also percent-encoded) or a JWT."""
    return "vb_" in text or "eyJ" in text or "vb%5f" in text.lower()


def authorization_without_credentials(authorization: str) -> str:
    """The ``Authorization`` header to forward: ``""`` when it carries a credential."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" or _holds_credential(authorization):
        return ""
    if scheme.lower() == "basic":
        try:
            decoded = b64decode(rest.strip(), validate=False).decode("latin-1")
        except (binascii.Error, ValueError):
            return authorization
        if _holds_credential(decoded):
            return ""
    return authorization
