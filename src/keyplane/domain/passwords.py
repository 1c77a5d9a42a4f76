"""Password hashing with argon2id, and the policy a new password must meet.

The defaults sit above OWASP ASVS 5's floor for argon2id (19 MiB, t=2, p=1);
weaker settings are refused. Hashing is slow on purpose: callers run it off
the event loop (see ``keyplane.services.auth``).

The policy follows NIST SP 800-63B: at least 12 characters (Unicode code
points after NFKC normalisation), at most 256, no composition rules, and not
one of the commonly used passwords in ``common_passwords.txt`` (the 20,000
most common passwords of the list Django ships, BSD licence).
"""

from __future__ import annotations

import contextlib
import secrets
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from keyplane.errors import InvalidArgument

FLOOR_MEMORY_KIB = 19 * 1024
FLOOR_TIME_COST = 2
FLOOR_PARALLELISM = 1

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int = 64 * 1024
    time_cost: int = 3
    parallelism: int = 4

    def __post_init__(self) -> None:
        if (
            self.memory_kib < FLOOR_MEMORY_KIB
            or self.time_cost < FLOOR_TIME_COST
            or self.parallelism < FLOOR_PARALLELISM
        ):
            raise ValueError(
                "argon2id parameters below the OWASP floor "
                f"(memory >= {FLOOR_MEMORY_KIB} KiB, time_cost >= {FLOOR_TIME_COST}, "
                f"parallelism >= {FLOOR_PARALLELISM})"
            )


class PasswordHashing:
    """Hash and verify passwords; verifying an unknown user costs the same as a wrong one."""

    def __init__(self, parameters: Argon2Parameters | None = None) -> None:
        p = parameters or Argon2Parameters()
        self._hasher = PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_kib,
            parallelism=p.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

        # Verified against when the username is unknown, so timing reveals nothing.
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` costs one verification all the same."""
        if password_hash is None:
            self._spend_one_verification(password)
            return False
        try:
            self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return True

    def _spend_one_verification(self, password: str) -> None:
        """Exactly one argon2 computation, the first time as every time after.

        Making the dummy hash costs what verifying against it costs, so the
        first unknown username makes it instead of verifying: it is no slower
        than the next one, and start-up does not pay for it.
        """
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))
            return
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    """A random password for a new agent (about 190 bits)."""
    return secrets.token_urlsafe(24)


@cache
def _common_passwords() -> frozenset[str]:
    text = resources.files("keyplane.domain").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def check_new_password(password: str) -> None:
    """Refuse, with ``InvalidArgument`` saying why, a password too short, long or common.

    The one rule for every way a password is set (API, command line, admin
    page); logging in never applies it, so older passwords keep working.
    """
    normalized = unicodedata.normalize("NFKC", password)
    length = len(normalized)
    if length < MIN_PASSWORD_LENGTH:
        raise InvalidArgument(
            f"The password has {length} character{'' if length == 1 else 's'}; it needs at "
            f"least {MIN_PASSWORD_LENGTH}. "
            "A few unrelated words make a long password that is easy to remember.",
            reason="PASSWORD_TOO_SHORT",
        )
    if length > MAX_PASSWORD_LENGTH:
        raise InvalidArgument(
            f"The password has {length} characters; it may have at most {MAX_PASSWORD_LENGTH}.",
            reason="PASSWORD_TOO_LONG",
        )
    if normalized.casefold() in _common_passwords():
        raise InvalidArgument(
            "The password is one of the most commonly used passwords; choose another.",
            reason="PASSWORD_TOO_COMMON",
        )
