from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from keyplane.domain.sessions import SessionCodec
from keyplane.errors import InvalidCredentials
from tests.unit.domain import exactly

SECRET = b"s" * 64
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def codec() -> SessionCodec:
    return SessionCodec(SECRET, timedelta(days=7))


def test_round_trip() -> None:
    agent, customer = uuid.uuid4(), uuid.uuid4()
    token = codec().issue(agent, customer, NOW)
    claims = codec().decode(token, NOW)
    assert (claims.agent_id, claims.customer_id) == (agent, customer)
    assert claims.expires_at == NOW + timedelta(days=7)
    assert claims.session_id == uuid.UUID(hex=str(_read(token)["jti"]))


def test_expires_after_the_ttl() -> None:
    token = codec().issue(uuid.uuid4(), uuid.uuid4(), NOW)
    codec().decode(token, NOW + timedelta(days=7) - timedelta(seconds=1))
    with pytest.raises(InvalidCredentials):
        codec().decode(token, NOW + timedelta(days=7))


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionCodec(b"short", timedelta(days=1))


def _claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "cid": str(uuid.uuid4()),
        "iss": "keyplane",
        "aud": "keyplane",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), b"other-secret-" + b"x" * 32, algorithm="HS256"),
        jwt.encode(_claims(), SECRET, algorithm="HS512"),
        jwt.encode(_claims(), None, algorithm="none"),
        jwt.encode(_claims(iss="someone"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(aud="someone"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(iat=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"),
        jwt.encode(_claims(sub="not-a-uuid"), SECRET, algorithm="HS256"),
        "not.a.jwt",
        "",
    ],
    ids=[
        "secret",
        "hs512",
        "none",
        "iss",
        "aud",
        "no-exp",
        "no-iat",
        "no-sub",
        "bad-sub",
        "garbage",
        "empty",
    ],
)
def test_bad_tokens_are_invalid_credentials(token: str) -> None:
    with pytest.raises(InvalidCredentials):
        codec().decode(token, NOW)


def test_tampered_payload_is_refused() -> None:
    token = codec().issue(uuid.uuid4(), uuid.uuid4(), NOW)
    header, _payload, signature = token.split(".")
    forged = jwt.encode(_claims(), b"x" * 32, algorithm="HS256").split(".")[1]
    with pytest.raises(InvalidCredentials):
        codec().decode(f"{header}.{forged}.{signature}", NOW)


def test_issued_in_the_future_is_refused() -> None:
    token = codec().issue(uuid.uuid4(), uuid.uuid4(), NOW + timedelta(minutes=5))
    with pytest.raises(InvalidCredentials):
        codec().decode(token, NOW)


def test_a_secret_of_32_bytes_is_enough() -> None:
    SessionCodec(b"k" * 32, timedelta(days=1))
    with pytest.raises(ValueError, match=exactly("the JWT secret must be at least 32 bytes")):
        SessionCodec(b"k" * 31, timedelta(days=1))


def _read(token: str) -> dict[str, object]:
    """The claims, checked as PyJWT checks them but for the time claims (``NOW`` is fixed)."""
    return jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="keyplane",
        issuer="keyplane",
        options={"verify_exp": False, "verify_iat": False},
    )


def test_issued_claims() -> None:
    """What a token says, as any HS256 JWT library reads it with the shared secret."""
    agent, customer = uuid.uuid4(), uuid.uuid4()
    token = codec().issue(agent, customer, NOW)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = _read(token)
    assert {key: claims[key] for key in ("sub", "cid", "iss", "aud", "iat", "exp")} == {
        "sub": str(agent),
        "cid": str(customer),
        "iss": "keyplane",
        "aud": "keyplane",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 7 * 86400,
    }
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) == 32
    other = _read(codec().issue(agent, customer, NOW))
    assert other["jti"] != claims["jti"]  # two logins in one second are two tokens


def test_a_token_signed_with_the_secret_by_another_library_is_accepted() -> None:
    customer = uuid.uuid4()
    token = jwt.encode(_claims(cid=str(customer)), SECRET, algorithm="HS256")
    claims = codec().decode(token, NOW)
    assert claims.customer_id == customer
    assert claims.expires_at == NOW + timedelta(hours=1)


def test_time_is_the_injected_clock_not_the_system_clock() -> None:
    """A token is checked against ``now`` as given, whatever the machine's date."""
    for moment in (datetime(2001, 9, 10, tzinfo=UTC), datetime(2280, 1, 1, tzinfo=UTC)):
        token = codec().issue(uuid.uuid4(), uuid.uuid4(), moment)
        assert codec().decode(token, moment).expires_at == moment + timedelta(days=7)


def test_sixty_seconds_of_clock_skew_are_allowed_for_iat() -> None:
    at_the_edge = codec().issue(uuid.uuid4(), uuid.uuid4(), NOW + timedelta(seconds=60))
    codec().decode(at_the_edge, NOW)
    beyond = codec().issue(uuid.uuid4(), uuid.uuid4(), NOW + timedelta(seconds=61))
    with pytest.raises(InvalidCredentials):
        codec().decode(beyond, NOW)


def _signed(**changes: object) -> str:
    return jwt.encode(_claims(**changes), SECRET, algorithm="HS256")


def test_numeric_dates_from_2001_to_2286_are_read() -> None:
    token = _signed(iat=10**9, exp=10**10)
    assert codec().decode(token, NOW).expires_at == datetime.fromtimestamp(10**10, tz=UTC)


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": 10**9 - 1},
        {"exp": 10**10 + 1},
        {"iat": float(int(NOW.timestamp()))},
        {"exp": float(int(NOW.timestamp()) + 3600)},
        {"iat": str(int(NOW.timestamp()))},
        {"iat": True},
        {"exp": 2**70},
        {"cid": None},
        {"cid": "not-a-uuid"},
        {"jti": None},
        {"jti": "not-a-session-id"},
        {"jti": str(uuid.uuid4())},
        {"jti": "\uff10" * 32},
        {"jti": 12345},
    ],
    ids=[
        "iat-before-2001",
        "exp-after-2286",
        "float-iat",
        "float-exp",
        "string-iat",
        "bool-iat",
        "huge-exp",
        "no-cid",
        "bad-cid",
        "no-jti",
        "bad-jti",
        "jti-with-hyphens",
        "jti-fullwidth-digits",
        "jti-number",
    ],
)
def test_claims_it_never_issues_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidCredentials):
        codec().decode(_signed(**changes), NOW)


def test_expiry_is_exclusive_and_follows_the_ttl() -> None:
    short = SessionCodec(SECRET, timedelta(minutes=5))
    token = short.issue(uuid.uuid4(), uuid.uuid4(), NOW)
    assert short.decode(token, NOW + timedelta(seconds=299)).expires_at == NOW + timedelta(
        minutes=5
    )
    with pytest.raises(InvalidCredentials):
        short.decode(token, NOW + timedelta(minutes=5))
