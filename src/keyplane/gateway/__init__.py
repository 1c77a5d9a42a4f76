"""Protect a Python web service with a keyplane server, without a gateway.

::

    verifier = KeyplaneVerifier("http://127.0.0.1:8080")
    app.add_middleware(KeyplaneAuthMiddleware, verifier=verifier)     # every request
    # or, per route, in FastAPI:
    Caller = Annotated[VerifiedIdentity, Depends(KeyplaneAuth(verifier))]
    app.add_exception_handler(KeyplaneRefused, refusal_handler)

Both ask the server's ``GET /auth/verify`` and cache an allowed answer for at
most one second (keyplane's revocation promise). ``docs/gateway.md`` has more.
"""

from keyplane.gateway._fastapi import KeyplaneAuth, refusal_handler
from keyplane.gateway._middleware import SCOPE_KEY, KeyplaneAuthMiddleware
from keyplane.gateway._verifier import (
    REVOCATION_BOUND,
    KeyplaneRefused,
    KeyplaneVerifier,
    Verdict,
    VerifiedIdentity,
)

__all__ = [
    "REVOCATION_BOUND",
    "SCOPE_KEY",
    "KeyplaneAuth",
    "KeyplaneAuthMiddleware",
    "KeyplaneRefused",
    "KeyplaneVerifier",
    "Verdict",
    "VerifiedIdentity",
    "refusal_handler",
]
