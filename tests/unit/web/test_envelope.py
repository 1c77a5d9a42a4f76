"""The error envelope, whatever raised the error: every field, status and header exactly."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyplane.errors import (
    AuthenticationRequired,
    FailedPrecondition,
    KeyplaneError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from keyplane.web.envelope import (
    HTTP_STATUS,
    INTERNAL_MESSAGE,
    envelope,
    error_headers,
    error_response,
    install_error_handlers,
    internal_error_response,
    request_id_of,
)

REQUEST_ID = "0123456789abcdef0123456789abcdef"


class Body(BaseModel):
    name: str
    expire: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        request.scope.setdefault("state", {})["request_id"] = REQUEST_ID
        return await call_next(request)

    @app.get("/http/{code}")
    async def http_error(code: int) -> None:
        raise StarletteHTTPException(code, headers={"X-Kept": "yes"})

    @app.get("/keyplane/{kind}")
    async def keyplane_error(kind: str) -> None:
        raise ERRORS[kind]

    @app.post("/body")
    async def body(value: Body) -> dict[str, str]:
        return {"name": value.name}

    @app.get("/both")
    async def read() -> None:
        return None

    @app.delete("/both")
    async def delete() -> None:
        return None

    return app


ERRORS: dict[str, KeyplaneError] = {
    "required": AuthenticationRequired(),
    "denied": PermissionDenied("No.", reason="SCOPE"),
    "gone": FailedPrecondition(reason="STATE_INVALID"),
    "missing": NotFound("The access key was not found.", reason="RESOURCE_NOT_FOUND"),
    "limited": ResourceExhausted(retry_after=7, limit=30),
    "busy": Unavailable(),
}


async def _get(path: str, method: str = "GET", **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _error(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, str] = body["error"]
    assert list(error) == ["status", "reason", "message", "request_id"]
    assert error["request_id"] == REQUEST_ID
    return error


HTTP_ERRORS = [
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The request is not valid."),
    (401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED", "Authentication is required."),
    (403, "PERMISSION_DENIED", "PERMISSION_DENIED", "The request is not allowed."),
    (404, "NOT_FOUND", "ROUTE_NOT_FOUND", "No such endpoint; see /openapi.json for the API."),
    (408, "INVALID_ARGUMENT", "BODY_TIMEOUT", "The request body did not arrive in time."),
    (413, "INVALID_ARGUMENT", "BODY_TOO_LARGE", "The request body is too large."),
    (429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED", "Too many requests; retry later."),
    (
        503,
        "UNAVAILABLE",
        "SERVICE_UNAVAILABLE",
        "The service is temporarily unavailable; retry later.",
    ),
    (418, "INTERNAL", "INTERNAL", INTERNAL_MESSAGE),
]


@pytest.mark.parametrize(
    ("code", "status", "reason", "message"), HTTP_ERRORS, ids=[str(c[0]) for c in HTTP_ERRORS]
)
async def test_every_http_error_is_its_envelope(
    code: int, status: str, reason: str, message: str
) -> None:
    response = await _get(f"/http/{code}")
    assert response.status_code == (code if code != 418 else 500)
    assert _error(response) == {
        "status": status,
        "reason": reason,
        "message": message,
        "request_id": REQUEST_ID,
    }
    assert response.headers["x-kept"] == "yes"  # the exception's own headers stay


async def test_a_405_names_every_method_of_the_path_head_after_get() -> None:
    response = await _get("/both", method="POST")
    assert response.status_code == 405
    assert _error(response)["reason"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET, HEAD, DELETE"


async def test_a_405_on_a_get_only_path_allows_get_then_head() -> None:
    response = await _get("/http/404", method="DELETE")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_a_405_on_a_path_with_head_of_its_own_lists_it_once() -> None:
    app = _app()

    @app.head("/headed")
    async def head() -> None:
        return None

    @app.get("/headed")
    async def get() -> None:
        return None

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.put("/headed")
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("kind", "code", "status", "reason", "message"),
    [
        (
            "required",
            401,
            "UNAUTHENTICATED",
            "AUTHENTICATION_REQUIRED",
            AuthenticationRequired.default_message,
        ),
        ("denied", 403, "PERMISSION_DENIED", "SCOPE", "No."),
        (
            "gone",
            409,
            "FAILED_PRECONDITION",
            "STATE_INVALID",
            FailedPrecondition.default_message,
        ),
        ("missing", 404, "NOT_FOUND", "RESOURCE_NOT_FOUND", "The access key was not found."),
        (
            "limited",
            429,
            "RESOURCE_EXHAUSTED",
            "RATE_LIMIT_EXCEEDED",
            "Too many requests; retry later.",
        ),
        ("busy", 503, "UNAVAILABLE", "SERVICE_UNAVAILABLE", Unavailable.default_message),
    ],
)
async def test_every_keyplane_error_is_its_envelope(
    kind: str, code: int, status: str, reason: str, message: str
) -> None:
    response = await _get(f"/keyplane/{kind}")
    assert response.status_code == code
    assert _error(response) == {
        "status": status,
        "reason": reason,
        "message": message,
        "request_id": REQUEST_ID,
    }


async def test_refusals_carry_their_headers() -> None:
    limited = await _get("/keyplane/limited")
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["ratelimit-limit"] == "30"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-reset"] == "7"
    busy = await _get("/keyplane/busy")
    assert busy.headers["retry-after"] == "1"
    required = await _get("/keyplane/required")
    assert required.headers["www-authenticate"] == 'Bearer realm="keyplane"'


def test_error_headers_exactly() -> None:
    assert error_headers(ResourceExhausted(retry_after=3)) == {"Retry-After": "3"}
    assert error_headers(ResourceExhausted(retry_after=2, limit=5)) == {
        "Retry-After": "2",
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "2",
    }
    assert error_headers(Unavailable()) == {"Retry-After": "1"}
    assert error_headers(AuthenticationRequired()) == {
        "WWW-Authenticate": 'Bearer realm="keyplane"'
    }
    assert error_headers(NotFound()) == {}


async def test_a_validation_error_names_the_fields_never_the_values() -> None:
    secret = "vb_" + "S" * 32
    response = await _get("/body", method="POST", json={"name": secret, "expire": "soon"})
    assert response.status_code == 400
    error = _error(response)
    assert (error["status"], error["reason"]) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert error["message"] == "Invalid or missing: body.expire."
    assert secret not in response.text
    both = _error(await _get("/body", method="POST", json={}))
    assert both["message"] == "Invalid or missing: body.expire, body.name."


@pytest.mark.parametrize(("status", "code"), sorted(HTTP_STATUS.items()))
def test_each_status_has_its_http_code(status: str, code: int) -> None:
    assert error_response(status, "R", "M", "id").status_code == code


def test_the_status_table_is_the_contracts() -> None:
    assert HTTP_STATUS == {
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
    assert error_response("SOMETHING_ELSE", "R", "M", "id").status_code == 500
    assert error_response("NOT_FOUND", "R", "M", "id", http_status=410).status_code == 410


def test_the_envelope_and_the_internal_error() -> None:
    assert envelope("S", "R", "M", "id") == {
        "error": {"status": "S", "reason": "R", "message": "M", "request_id": "id"}
    }
    response = internal_error_response("rid")
    assert response.status_code == 500
    assert response.body == (
        b'{"error":{"status":"INTERNAL","reason":"INTERNAL","message":"'
        + INTERNAL_MESSAGE.encode()
        + b'","request_id":"rid"}}'
    )
    assert INTERNAL_MESSAGE == "An internal error occurred; quote the request id when reporting it."


def test_request_id_of_a_scope() -> None:
    assert request_id_of({"state": {"request_id": "abc"}}) == "abc"
    assert request_id_of({"state": {}}) == ""
    assert request_id_of({}) == ""
