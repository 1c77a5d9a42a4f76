from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from keyplane.domain.sessions import SessionCodec
from keyplane.errors import InvalidCredentials

SECRET = b"s" * 64
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def codec() -> SessionCodec:
    return SessionCodec(SECRET, timedelta(days=7))


def test_round_trip() -> None:
    agent, customer = uuid.uuid4(), uuid.uuid4()
    claims = codec().decode(codec().issue(agent, customer, NOW), NOW)
    assert (claims.agent_id, claims.customer_id) == (agent, customer)
    assert claims.expires_at == NOW + timedelta(days=7)


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
