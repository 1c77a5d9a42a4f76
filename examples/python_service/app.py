"""A FastAPI service protected by keyplane without a gateway.

Every request under ``/v1.0/`` is verified by a keyplane server's
``GET /auth/verify`` (``KeyplaneAuthMiddleware``); handlers get the caller's
identity with ``Depends(KeyplaneAuth(verifier))``. Run, with keyplane serving
on 127.0.0.1:8080::

    KEYPLANE_URL=http://127.0.0.1:8080 .venv/bin/uvicorn --app-dir examples/python_service \\
        --factory app:main --port 8082
    curl "http://127.0.0.1:8082/v1.0/whoami?accesskey=vb_..."
"""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from keyplane.gateway import (
    KeyplaneAuth,
    KeyplaneAuthMiddleware,
    KeyplaneRefused,
    KeyplaneVerifier,
    VerifiedIdentity,
    refusal_handler,
)


def create_app(verifier: KeyplaneVerifier) -> FastAPI:
    app = FastAPI(title="a service protected by keyplane")
    app.add_middleware(KeyplaneAuthMiddleware, verifier=verifier, exempt={"/health"})
    app.add_exception_handler(KeyplaneRefused, refusal_handler)
    caller = KeyplaneAuth(verifier)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1.0/whoami")
    async def whoami(
        identity: Annotated[VerifiedIdentity, Depends(caller)], request: Request
    ) -> dict[str, Any]:
        return {
            "customer_id": identity.customer_id,
            "identity_type": identity.identity_type,
            "identity_id": identity.identity_id,
            "permission": identity.permission,
            "token_prefix": identity.token_prefix,
            # What the handler received: never a credential.
            "query": request.url.query,
            "cookies": dict(request.cookies),
            "authorization": request.headers.get("authorization"),
        }

    return app


def main() -> FastAPI:
    """For ``uvicorn --factory app:main``: keyplane's address from ``KEYPLANE_URL``."""
    return create_app(KeyplaneVerifier(os.environ.get("KEYPLANE_URL", "http://127.0.0.1:8080")))
