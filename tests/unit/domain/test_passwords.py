from __future__ import annotations

import base64
import string

import pytest
from argon2 import extract_parameters

from keyplane.domain.passwords import Argon2Parameters, PasswordHashing, generate_password
from tests.unit.domain import exactly

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
        # A stored value that is not an argon2 hash is refused before any computation.
        extract_parameters(stored)
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


def _encoded(stored: str) -> tuple[str, int, int]:
    """The parameters, salt length and hash length an encoded argon2 hash records."""
    _, variant, _version, parameters, salt, digest = stored.split("$")
    return (
        f"{variant} {parameters}",
        len(base64.b64decode(salt + "==")),
        len(base64.b64decode(digest + "==")),
    )


def test_a_hash_records_the_parameters_a_16_byte_salt_and_32_bytes() -> None:
    assert _encoded(PasswordHashing(FLOOR).hash("pw")) == ("argon2id m=19456,t=2,p=1", 16, 32)


def test_the_documented_defaults() -> None:
    """64 MiB, 3 passes, 4 lanes (docs/configuration.md)."""
    assert Argon2Parameters() == Argon2Parameters(memory_kib=65536, time_cost=3, parallelism=4)
    assert _encoded(PasswordHashing().hash("pw"))[0] == "argon2id m=65536,t=3,p=4"
    assert _encoded(PasswordHashing(None).hash("pw"))[0] == "argon2id m=65536,t=3,p=4"


def test_the_floor_itself_is_accepted_and_named_in_the_refusal() -> None:
    assert Argon2Parameters(memory_kib=19456, time_cost=2, parallelism=1) == FLOOR
    with pytest.raises(
        ValueError,
        match=exactly(
            "argon2id parameters below the OWASP floor "
            "(memory >= 19456 KiB, time_cost >= 2, parallelism >= 1)"
        ),
    ):
        Argon2Parameters(memory_kib=1024)


def test_generated_passwords_are_32_url_safe_characters_and_differ() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) == 32
        assert set(password) <= set(string.ascii_letters + string.digits + "-_")
