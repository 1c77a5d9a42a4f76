"""Page tokens for listing access keys.

keyplane's own cursor names the last key seen by ``(tm_create, id)``, so keys
sharing one ``tm_create`` are each listed exactly once. VoIPBIN's cursor, the
last item's ``tm_create`` as a timestamp, is accepted too.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from keyplane.domain.timefmt import format_timestamp, parse_cursor_timestamp, parse_timestamp

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
# keyplane's own tokens are 86 characters, VoIPBIN's timestamps 27; a longer
# value is refused before any decoding.
MAX_PAGE_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Cursor:
    tm_create: datetime
    id: uuid.UUID | None


_INTEGER = re.compile(r"[+-]?[0-9]+")


def page_size_from_query(raw: str | None) -> int:
    """1..100; missing, empty or an integer out of range means 100, as VoIPBIN does.

    Raises ``ValueError`` for a value that is not an integer (``abc``, ``1.5``),
    which VoIPBIN's generated server refuses with 400 too.
    """
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not _INTEGER.fullmatch(raw):
        raise ValueError("page_size is not an integer")
    # Leading zeros do not make a number larger: 0007 is 7, however many zeros.
    digits = raw.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_PAGE_SIZE)):
        return DEFAULT_PAGE_SIZE  # out of range; int() of thousands of digits is refused
    size = int(digits or "0")
    return size if 1 <= size <= MAX_PAGE_SIZE and not raw.startswith("-") else DEFAULT_PAGE_SIZE


def encode_cursor(tm_create: datetime, key_id: uuid.UUID) -> str:
    raw = f"{format_timestamp(tm_create)}|{key_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """Raises ``ValueError`` for anything that is neither form."""
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise ValueError("not a page token issued by this service")
    try:
        return Cursor(parse_cursor_timestamp(token), None)
    except ValueError:
        pass
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        moment, _, key_id = text.partition("|")
        return Cursor(parse_timestamp(moment), uuid.UUID(key_id))
    except (ValueError, binascii.Error, UnicodeError) as error:
        raise ValueError("not a page token issued by this service") from error
