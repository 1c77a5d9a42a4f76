"""The exceptions of ``keyplane.client``.

The hierarchy::

    ClientError                  anything this client raises
    ├── TransportError           no answer: connection refused, timeout, TLS, ...
    └── APIError                 the server answered with the contract's error envelope
        ├── InvalidArgumentError     400  (status INVALID_ARGUMENT)
        ├── AuthenticationError      401  (no credential, or an invalid one)
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── ConflictError            409  (a deleted key, a taken username, ...)
        ├── RateLimitedError         429  (after the retries allowed)
        └── UnavailableError         503  (after the retries allowed)

Every :class:`APIError` carries the envelope's ``status``, ``reason``,
``message`` and ``request_id``, and the HTTP ``status_code``. No credential
is ever part of an exception's text.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "ClientError",
    "ConflictError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "TransportError",
    "UnavailableError",
]


class ClientError(Exception):
    """Base class of every exception raised by ``keyplane.client``."""


class TransportError(ClientError):
    """The request got no HTTP answer (connection refused or reset, timeout, TLS)."""


class APIError(ClientError):
    """The server refused the request; the fields are those of the error envelope."""

    def __init__(
        self,
        *,
        status_code: int,
        status: str,
        reason: str,
        message: str,
        request_id: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {reason}: {message} (request id {request_id or '-'})")
        self.status_code = status_code
        self.status = status
        self.reason = reason
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


class InvalidArgumentError(APIError):
    """400: the request was malformed or a value was out of range."""


class AuthenticationError(APIError):
    """401: no credential, or one that is unknown, malformed, expired, deleted or disabled."""


class PermissionDeniedError(APIError):
    """403: the credential is valid but may not do this."""


class NotFoundError(APIError):
    """404: no such resource for the caller's customer."""


class ConflictError(APIError):
    """409: the resource is in a state that refuses this (e.g. a deleted key)."""


class RateLimitedError(APIError):
    """429: too many requests; ``retry_after`` says when to try again, in seconds."""


class UnavailableError(APIError):
    """503: the server (or its database) is unavailable for now."""


_BY_STATUS_CODE: dict[int, type[APIError]] = {
    400: InvalidArgumentError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
    503: UnavailableError,
}


def error_class(status_code: int) -> type[APIError]:
    return _BY_STATUS_CODE.get(status_code, APIError)
