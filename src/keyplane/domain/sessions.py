"""Session tokens: HS256 JWTs issued at login.

The algorithm is pinned, ``exp``/``iat``/``sub``/``jti`` are required, ``iss``
and ``aud`` are set and checked. Expiry is checked against the injected clock.
Every failure is the same :class:`InvalidCredentials`.

``jti`` is the session's id: a logout revokes that id until the token's own
``exp`` (``keyplane.services.sessions``). Every token this codec has ever issued
carries one (32 hex digits, a UUID); a token without it could not be ended, so
it is refused like any other token this codec never issued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from keyplane.errors import InvalidCredentials

ALGORITHM = "HS256"
ISSUER = "keyplane"
AUDIENCE = "keyplane"
MIN_SECRET_BYTES = 32
CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionClaims:
    agent_id: uuid.UUID
    customer_id: uuid.UUID
    expires_at: datetime
    session_id: uuid.UUID  # the ``jti`` claim


# No token this codec issues is dated before 2001 or after 2286 (10^10 s):
# anything outside is forged or garbage, refused before any date arithmetic.
_EARLIEST_TIMESTAMP = 10**9
_LATEST_TIMESTAMP = 10**10


def _moment(value: object, now: datetime) -> datetime:
    """A NumericDate claim issued by :meth:`SessionCodec.issue`: an integer in range.

    A string, a float, a boolean or an absurd number is refused (``ValueError``),
    never converted (RFC 7519 4.1.4; RFC 8725 3.x: accept only what was issued).
    """
    if type(value) is not int or not _EARLIEST_TIMESTAMP <= value <= _LATEST_TIMESTAMP:
        raise ValueError("not a NumericDate this codec issues")
    return datetime.fromtimestamp(value, tz=now.tzinfo)


def _session_id(value: object) -> uuid.UUID:
    """The ``jti`` as :meth:`SessionCodec.issue` writes it: 32 hex digits (``ValueError``)."""
    if not isinstance(value, str) or len(value) != 32 or not value.isascii():
        raise ValueError("not a session id this codec issues")
    return uuid.UUID(hex=value)


class SessionCodec:
    def __init__(self, secret: bytes, ttl: timedelta) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._ttl = ttl

    def issue(self, agent_id: uuid.UUID, customer_id: uuid.UUID, now: datetime) -> str:
        claims = {
            "sub": str(agent_id),
            "cid": str(customer_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str, now: datetime) -> SessionClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked below against the injected clock.
                options={
                    "require": ["exp", "iat", "sub", "iss", "aud", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
            issued_at = _moment(claims["iat"], now)
            expires_at = _moment(claims["exp"], now)
            agent_id = uuid.UUID(str(claims["sub"]))
            customer_id = uuid.UUID(str(claims.get("cid", "")))
            session_id = _session_id(claims["jti"])
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            raise InvalidCredentials() from None
        if expires_at <= now or issued_at > now + CLOCK_SKEW:
            raise InvalidCredentials()
        return SessionClaims(agent_id, customer_id, expires_at, session_id)
