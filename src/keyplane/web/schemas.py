"""Request and response schemas, as /openapi.json shows them.

Bodies are read by ``keyplane.web.body`` (JSON whatever the Content-Type);
these models document them and shape the responses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
TIMESTAMP_DOC = "UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(BaseModel):
    username: str
    password: str = Field(json_schema_extra={"format": "password"})


class LoginResponse(_Strict):
    username: str
    token: str = Field(description="Session token (JWT). Send it as `Authorization: Bearer`.")


class AccesskeyCreateRequest(BaseModel):
    name: str = Field(default="", description="Missing or null means an empty string.")
    detail: str = Field(default="", description="Missing or null means an empty string.")
    expire: int = Field(description="Lifetime in seconds, at least 86400 (one day).")


class AccesskeyUpdateRequest(BaseModel):
    name: str = Field(default="", description="Missing or null means an empty string.")
    detail: str = Field(default="", description="Missing or null means an empty string.")


class Accesskey(_Strict):
    id: str = Field(json_schema_extra={"format": "uuid"})
    customer_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    detail: str
    token_prefix: str = Field(description="The first 11 characters of the token (`vb_` + 8).")
    tm_expire: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_update: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_delete: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class AccesskeyWithToken(Accesskey):
    token: str = Field(description="The full token: shown in this response and never again.")


class AccesskeyList(_Strict):
    result: list[Accesskey]
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next page; null when this page is empty."
    )


class Customer(_Strict):
    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    detail: str
    email: str
    webhook_method: str
    webhook_uri: str
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_update: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_delete: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class ErrorDetail(_Strict):
    status: str = Field(description="INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, …")
    reason: str = Field(description="Machine-readable cause, e.g. ACCESSKEY_NOT_FOUND.")
    message: str
    request_id: str


class ErrorEnvelope(_Strict):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid argument (INVALID_ARGUMENT).",
        401: "No credential (AUTHENTICATION_REQUIRED) or a bad one (INVALID_CREDENTIALS).",
        403: "The caller lacks the permission (PERMISSION_DENIED).",
        404: "Not found, or belongs to another customer (NOT_FOUND).",
        405: "Method not allowed.",
        429: "Rate limited (RESOURCE_EXHAUSTED); see Retry-After.",
        500: "Internal error (INTERNAL).",
        503: "A dependency is unavailable (UNAVAILABLE).",
    }
    return {code: {"model": ErrorEnvelope, "description": descriptions[code]} for code in codes}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the route reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
