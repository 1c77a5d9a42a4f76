"""Page sizes and page tokens.

For access keys, keyplane's own cursor names the last key seen by
``(tm_create, id)``, so keys sharing one ``tm_create`` are each listed exactly
once. VoIPBIN's cursor, the last item's ``tm_create`` as a timestamp, is
accepted too. The audit log and the webhook deliveries are paged by sequence
number: their token is the last item's ``seq`` in decimal.
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
# Sequence numbers are the databases' 64-bit integers (BIGINT, SQLite's INTEGER):
# a larger token would fail in the driver, so it is refused here.
MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    tm_create: datetime
    id: uuid.UUID | None


_INTEGER = re.compile(r"[+-]?[0-9]+")
_SEQ = re.compile(r"[0-9]{1,19}")


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


def seq_from_page_token(token: str | None) -> int | None:
    """The ``seq`` a sequence-numbered page starts before; ``None`` for the first page.

    Raises ``ValueError`` for anything but a decimal ``0`` to ``MAX_SEQ`` (a sign,
    spaces, other digits than ASCII, or a number past what the database holds).
    """
    if not token:
        return None
    if not _SEQ.fullmatch(token) or int(token) > MAX_SEQ:
        raise ValueError("not a page token issued by this service")
    return int(token)
