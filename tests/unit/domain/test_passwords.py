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
