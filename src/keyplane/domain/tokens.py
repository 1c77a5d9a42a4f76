"""The access key token: the one place that knows its format.

A token is ``vb_`` followed by 32 characters from ``[A-Za-z0-9]``. Only its
SHA-256 (``token_hash``) and its first 11 characters (``token_prefix``) are
ever stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

TOKEN_PREFIX = "vb_"  # noqa: S105 (a prefix, not a secret)
TOKEN_BODY_LENGTH = 32
TOKEN_LENGTH = len(TOKEN_PREFIX) + TOKEN_BODY_LENGTH
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
ALPHABET = string.ascii_letters + string.digits
TOKEN_PATTERN = re.compile(r"vb_[A-Za-z0-9]{32}")
# Matches a token inside longer text, also when its underscore is percent-encoded.
TOKEN_SEARCH_PATTERN = re.compile(r"vb(?:_|%5[fF])[A-Za-z0-9]{32}")


def generate_token() -> str:
    """A new token from the operating system's secure random source."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(TOKEN_BODY_LENGTH))
    return TOKEN_PREFIX + body


def is_wellformed(value: str) -> bool:
    """Cheap check done before any hashing or database work."""
    return len(value) == TOKEN_LENGTH and TOKEN_PATTERN.fullmatch(value) is not None


def looks_like_accesskey(value: str) -> bool:
    """A Bearer value with the access key prefix is an access key, not a JWT."""
    return value.startswith(TOKEN_PREFIX)


def hash_token(token: str) -> str:
    """Lowercase hex SHA-256 of the whole token string."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def display_prefix(token: str) -> str:
    """The first 11 characters (``vb_`` + 8), safe to show and store."""
    return token[:DISPLAY_PREFIX_LENGTH]
