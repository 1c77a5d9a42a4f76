from __future__ import annotations

import pytest

from keyplane.domain.passwords import Argon2Parameters, PasswordHashing

FLOOR = Argon2Parameters(memory_kib=19 * 1024, time_cost=2, parallelism=1)


def test_hash_is_argon2id_and_verifies() -> None:
    hashing = PasswordHashing(FLOOR)
    stored = hashing.hash("hunter2")
    assert stored.startswith("$argon2id$")
    assert "hunter2" not in stored
    assert hashing.verify(stored, "hunter2")
    assert not hashing.verify(stored, "hunter3")


def test_unknown_user_never_verifies() -> None:
    hashing = PasswordHashing(FLOOR)
    assert not hashing.verify(None, "")
    assert not hashing.verify(None, "anything")


def test_corrupt_hash_does_not_raise() -> None:
    assert not PasswordHashing(FLOOR).verify("not-a-hash", "x")


@pytest.mark.parametrize(
    "parameters",
    [
        {"memory_kib": 19 * 1024 - 1, "time_cost": 2, "parallelism": 1},
        {"memory_kib": 19 * 1024, "time_cost": 1, "parallelism": 1},
        {"memory_kib": 19 * 1024, "time_cost": 2, "parallelism": 0},
    ],
)
def test_parameters_below_the_owasp_floor_are_refused(parameters: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="OWASP"):
        Argon2Parameters(**parameters)


def test_defaults_are_above_the_floor() -> None:
    defaults = Argon2Parameters()
    assert defaults.memory_kib >= 19 * 1024
    assert defaults.time_cost >= 2


def test_weaker_stored_hash_needs_rehash() -> None:
    old = PasswordHashing(FLOOR).hash("pw")
    assert PasswordHashing(Argon2Parameters()).needs_rehash(old)
    assert not PasswordHashing(FLOOR).needs_rehash(old)


class CountingHasher:
    """Wraps argon2's hasher and counts the argon2 computations (hash or verify)."""

    def __init__(self, hashing: PasswordHashing) -> None:
        self.inner = hashing._hasher
        self.computations = 0

    def hash(self, password: str) -> str:
        self.computations += 1
        return self.inner.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        self.computations += 1
        return self.inner.verify(stored, password)


def test_every_verification_costs_one_argon2_computation_from_the_first() -> None:
    """The first unknown username costs what the next one and a known one cost.

    Twice the cost once per process would tell a prober whether a name exists.
    """
    hashing = PasswordHashing(FLOOR)
    stored = hashing.hash("right")
    counter = CountingHasher(hashing)
    hashing._hasher = counter  # type: ignore[assignment]
    costs = []
    for password_hash, password in (
        (None, "first unknown"),
        (None, "second unknown"),
        (stored, "wrong"),
        (stored, "right"),
        (None, "third unknown"),
    ):
        before = counter.computations
        hashing.verify(password_hash, password)
        costs.append(counter.computations - before)
    assert costs == [1, 1, 1, 1, 1]
