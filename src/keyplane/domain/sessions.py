"""Session tokens: HS256 JWTs issued at login.

The algorithm is pinned, ``exp``/``iat``/``sub`` are required, ``iss`` and
``aud`` are set and checked. Expiry is checked against the injected clock.
Every failure is the same :class:`InvalidCredentials`.
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
                    "require": ["exp", "iat", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
            issued_at = datetime.fromtimestamp(_numeric_date(claims["iat"]), tz=now.tzinfo)
            expires_at = datetime.fromtimestamp(_numeric_date(claims["exp"]), tz=now.tzinfo)
            agent_id = uuid.UUID(str(claims["sub"]))
            customer_id = uuid.UUID(str(claims.get("cid", "")))
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError):
            raise InvalidCredentials() from None
        if expires_at <= now or issued_at > now + CLOCK_SKEW:
            raise InvalidCredentials()
        return SessionClaims(agent_id, customer_id, expires_at)


def _numeric_date(value: object) -> int:
    """A time claim as whole seconds; a string, a bool or a fraction is no NumericDate here."""
    if type(value) is not int:
        raise TypeError("a time claim must be an integer")
    return value
