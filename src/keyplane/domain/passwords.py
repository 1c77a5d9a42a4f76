"""Password hashing with argon2id.

The defaults sit above OWASP ASVS 5's floor for argon2id (19 MiB, t=2, p=1);
weaker settings are refused. Hashing is slow on purpose: callers run it off
the event loop (see ``keyplane.services.auth``).
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

FLOOR_MEMORY_KIB = 19 * 1024
FLOOR_TIME_COST = 2
FLOOR_PARALLELISM = 1


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
