"""``keyplane.client``: a typed Python client of the keyplane HTTP API, on httpx.

    from keyplane.client import Client

    with Client("http://127.0.0.1:8080", accesskey=key) as client:
        new = client.accesskeys.create(name="ci", expire=86400 * 30)
        for key in client.accesskeys.iter():
            print(key.id, key.name, key.tm_expire)

See docs/client.md. It imports only httpx (and anyio, which httpx needs).
"""

from keyplane.client._async_client import AsyncClient
from keyplane.client._client import Client
from keyplane.client._exceptions import (
    APIError,
    AuthenticationError,
    ClientError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
    UnavailableError,
)
from keyplane.client._models import (
    Accesskey,
    AccesskeyIdentity,
    AccesskeyPage,
    Agent,
    Customer,
    LoginResult,
    Verification,
)

__all__ = [
    "APIError",
    "Accesskey",
    "AccesskeyIdentity",
    "AccesskeyPage",
    "Agent",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientError",
    "ConflictError",
    "Customer",
    "InvalidArgumentError",
    "LoginResult",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "TransportError",
    "UnavailableError",
    "Verification",
]
