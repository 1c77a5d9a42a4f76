"""Domain errors.

Every layer below the web layer raises these; only ``keyplane.web.envelope``
turns them into HTTP responses. Each error carries the contract's ``status``
(a gRPC-style code), a machine-readable ``reason`` and a human message that
says what was wrong and what to do. Messages never contain a credential.

    KeyplaneError
    ├── InvalidArgument        400  INVALID_ARGUMENT
    │   └── LoginRefused       400  (a failed login, as VoIPBIN answers it)
    ├── Unauthenticated        401  UNAUTHENTICATED
    ├── PermissionDenied       403  PERMISSION_DENIED
    ├── NotFound               404  NOT_FOUND
    ├── AlreadyExists          409  ALREADY_EXISTS
    ├── FailedPrecondition     409  FAILED_PRECONDITION
    ├── ResourceExhausted      429  RESOURCE_EXHAUSTED
    ├── Internal               500  INTERNAL
    └── Unavailable            503  UNAVAILABLE
"""

from __future__ import annotations

from typing import ClassVar


class KeyplaneError(Exception):
    status: ClassVar[str] = "INTERNAL"
    default_reason: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "An internal error occurred."

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        self.message = message or self.default_message
        self.reason = reason or self.default_reason
        super().__init__(self.message)


class InvalidArgument(KeyplaneError):
    status = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"
    default_message = "The request is not valid."


class LoginRefused(InvalidArgument):
    """A wrong username or password: 400 like VoIPBIN, the same whatever was wrong."""

    default_reason = "INVALID_CREDENTIALS"
    default_message = "The username or password is not valid."


class Unauthenticated(KeyplaneError):
    status = "UNAUTHENTICATED"
    default_reason = "INVALID_CREDENTIALS"
    default_message = "The credentials are not valid."


class AuthenticationRequired(Unauthenticated):
    default_reason = "AUTHENTICATION_REQUIRED"
    default_message = (
        "Authentication is required: send an access key as 'Authorization: Bearer vb_...' "
        "(or ?accesskey=), or a session token from POST /auth/login."
    )


class InvalidCredentials(Unauthenticated):
    """The same message whatever the cause, so a guesser learns nothing."""

    default_reason = "INVALID_CREDENTIALS"
    default_message = "The credentials are not valid."


class PermissionDenied(KeyplaneError):
    status = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"
    default_message = "The caller does not have the permission this request needs."


class NotFound(KeyplaneError):
    status = "NOT_FOUND"
    default_reason = "NOT_FOUND"
    default_message = "The resource was not found."


class AlreadyExists(KeyplaneError):
    status = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"
    default_message = "The resource already exists."


class FailedPrecondition(KeyplaneError):
    status = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"
    default_message = "The system is not in a state required for this request."


class ResourceExhausted(KeyplaneError):
    status = "RESOURCE_EXHAUSTED"
    default_reason = "RATE_LIMIT_EXCEEDED"
    default_message = "Too many requests; retry later."

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        retry_after: int = 1,
        limit: int | None = None,
        reset_after: float = 0.0,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after
        self.limit = limit
        self.reset_after = reset_after


class Internal(KeyplaneError):
    pass


class Unavailable(KeyplaneError):
    status = "UNAVAILABLE"
    default_reason = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable; retry later."
