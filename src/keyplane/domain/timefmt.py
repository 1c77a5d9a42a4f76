"""The contract's timestamp format: UTC, six fractional digits and a ``Z``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_LENGTH = len("2026-01-01T00:00:00.000000Z")


def format_timestamp(moment: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``None`` for a moment that has not happened."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not allowed; keyplane works in UTC")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`; raises ``ValueError`` on any other form."""
    if len(text) != _LENGTH or not _PATTERN.fullmatch(text):
        raise ValueError("not a timestamp of the form YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# VoIPBIN's older cursor forms: a space instead of ``T`` and no zone
# (``2026-12-01 10:15:30.123456``), and either form without the fraction.
_LEGACY = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z?")


def parse_cursor_timestamp(text: str) -> datetime:
    """The contract's timestamp, or one of VoIPBIN's older forms (read as UTC)."""
    if _PATTERN.fullmatch(text):
        return parse_timestamp(text)
    if not _LEGACY.fullmatch(text):
        raise ValueError(f"not a timestamp cursor: {text!r}")
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)
