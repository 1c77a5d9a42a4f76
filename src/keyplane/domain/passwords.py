"""Password hashing with argon2id.

The defaults sit above OWASP ASVS 5's floor for argon2id (19 MiB, t=2, p=1);
weaker settings are refused. Hashing is slow on purpose: callers run it off
the event loop (see ``keyplane.services.auth``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property

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

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the username is unknown, so timing reveals nothing.

        Made on first need, not at start: commands that never log anyone in skip it.
        """
        return self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` hash runs a dummy verification."""
        try:
            self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    """A random password for a new agent (about 190 bits)."""
    return secrets.token_urlsafe(24)
