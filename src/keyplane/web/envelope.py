"""The contract's error envelope, for every error whatever raised it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from keyplane.errors import KeyplaneError, ResourceExhausted, Unauthenticated, Unavailable

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}
_STATUS_OF_HTTP = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "The request is not valid."),
    401: ("UNAUTHENTICATED", "AUTHENTICATION_REQUIRED", "Authentication is required."),
    403: ("PERMISSION_DENIED", "PERMISSION_DENIED", "The request is not allowed."),
    404: ("NOT_FOUND", "ROUTE_NOT_FOUND", "No such endpoint; see /openapi.json for the API."),
    405: ("METHOD_NOT_ALLOWED", "METHOD_NOT_ALLOWED", "This endpoint does not accept that method."),
    408: ("INVALID_ARGUMENT", "BODY_TIMEOUT", "The request body did not arrive in time."),
    413: ("INVALID_ARGUMENT", "BODY_TOO_LARGE", "The request body is too large."),
    429: ("RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "Too many requests; retry later."),
    503: (
        "UNAVAILABLE",
        "SERVICE_UNAVAILABLE",
        "The service is temporarily unavailable; retry later.",
    ),
}
INTERNAL_MESSAGE = "An internal error occurred; quote the request id when reporting it."


def request_id_of(scope: Any) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


def envelope(status: str, reason: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "error": {
            "status": status,
            "reason": reason,
            "message": message,
            "request_id": request_id,
        }
    }


def error_response(
    status: str,
    reason: str,
    message: str,
    request_id: str,
    *,
    http_status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        envelope(status, reason, message, request_id),
        status_code=http_status or HTTP_STATUS.get(status, 500),
        headers=headers,
    )


def internal_error_response(request_id: str) -> JSONResponse:
    return error_response("INTERNAL", "INTERNAL", INTERNAL_MESSAGE, request_id)


def error_headers(exc: KeyplaneError) -> dict[str, str]:
    """The headers a refusal carries (``Retry-After``, ``RateLimit-*``, ``WWW-Authenticate``)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ResourceExhausted):
        headers["Retry-After"] = str(exc.retry_after)
        if exc.limit is not None:
            headers["RateLimit-Limit"] = str(exc.limit)
            headers["RateLimit-Remaining"] = "0"
            # Refused: the limit frees up when one more request may pass.
            headers["RateLimit-Reset"] = str(exc.retry_after)
    elif isinstance(exc, Unavailable):
        headers["Retry-After"] = "1"
    elif isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="keyplane"'
    return headers


async def _keyplane_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyplaneError)
    return error_response(
        exc.status,
        exc.reason,
        exc.message,
        request_id_of(request.scope),
        headers=error_headers(exc),
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (the router names only the first)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")  # keyplane.web.methods
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status, reason, message = _STATUS_OF_HTTP.get(
        exc.status_code, ("INTERNAL", "INTERNAL", INTERNAL_MESSAGE)
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(
        status,
        reason,
        message,
        request_id_of(request.scope),
        http_status=exc.status_code if exc.status_code in _STATUS_OF_HTTP else 500,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Name the fields, never echo the values: a value may be a credential.
    fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
    return error_response(
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        f"Invalid or missing: {', '.join(fields)}." if fields else "The request is not valid.",
        request_id_of(request.scope),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KeyplaneError, _keyplane_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
