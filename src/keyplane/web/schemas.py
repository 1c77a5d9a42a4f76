"""Request and response schemas, as /openapi.json shows them.

Bodies are read by ``keyplane.web.body`` (JSON whatever the Content-Type);
these models document them and shape the responses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
TIMESTAMP_DOC = "UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Text fields refuse NUL and unpaired surrogates (400, see web/body.py); the
# documents say so. Only the document carries the pattern: the check is body.py's.
_TEXT: JsonDict = {"pattern": r"^[^\x00\ud800-\udfff]*$"}
_OPTIONAL_TEXT = "Missing or null means an empty string. No NUL or unpaired surrogate."


class LoginRequest(BaseModel):
    username: str = Field(json_schema_extra=_TEXT)
    password: str = Field(json_schema_extra={"format": "password", **_TEXT})


class LoginResponse(_Strict):
    username: str
    token: str = Field(description="Session token (JWT). Send it as `Authorization: Bearer`.")


class ScopeRule(_Strict):
    methods: list[str] = Field(
        description="HTTP methods: GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE.",
        examples=[["GET", "POST"]],
    )
    path_prefix: str = Field(
        description="An absolute path; matches whole segments (`/v1.0/calls` allows "
        "`/v1.0/calls/…`, not `/v1.0/callsign`).",
        examples=["/v1.0/calls"],
    )


_SCOPES_DOC = (
    'A restricted key: `"read_only"` (GET, HEAD, OPTIONS anywhere) or a list of rules, '
    "one of which must allow a request's method and path; never more than the creator holds."
)


_NETWORKS_DOC = (
    "The key's IP allowlist: 1 to 50 CIDRs (e.g. `203.0.113.0/24`); the client address "
    "is the peer's, or X-Forwarded-For's from a trusted proxy only."
)


class AccesskeyCreateRequest(BaseModel):
    name: str = Field(default="", description=_OPTIONAL_TEXT, json_schema_extra=_TEXT)
    detail: str = Field(default="", description=_OPTIONAL_TEXT, json_schema_extra=_TEXT)
    expire: int = Field(
        ge=86_400,
        le=2_147_483_647,
        description=(
            "Lifetime in seconds: an integer from 86400 (one day) to 2147483647 (an int32, "
            "as in VoIPBIN). An operator may set a lower maximum "
            "(KEYPLANE_ACCESSKEY_MAX_EXPIRE); a larger value is then 400 EXPIRE_ABOVE_MAXIMUM."
        ),
    )
    scopes: Literal["read_only"] | list[ScopeRule] | None = Field(
        default=None, description=_SCOPES_DOC + " Missing or null: unrestricted."
    )
    allowed_networks: list[str] | None = Field(
        default=None, description=_NETWORKS_DOC + " Missing or null: from anywhere."
    )


class AccesskeyUpdateRequest(BaseModel):
    name: str = Field(default="", description=_OPTIONAL_TEXT, json_schema_extra=_TEXT)
    detail: str = Field(default="", description=_OPTIONAL_TEXT, json_schema_extra=_TEXT)


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


class AccesskeyCreated(AccesskeyWithToken):
    scopes: list[ScopeRule] | None = Field(
        default=None, description="The key's scopes: present only when the request gave some."
    )
    allowed_networks: list[str] | None = Field(
        default=None, description="The key's IP allowlist: present only when the request gave one."
    )


class AccesskeyList(_Strict):
    result: list[Accesskey]
    next_page_token: str = Field(
        description='Pass as `page_token` for the next page; "" when this page is empty.'
    )


_EXPANDED_DOC = " Beyond VoIPBIN's object: present only when named in `expand`."


class AccesskeyExpanded(Accesskey):
    """VoIPBIN's access key, and the fields named in ``?expand=`` (left out otherwise)."""

    tm_last_used: str | None = Field(
        default=None,
        pattern=TIMESTAMP_PATTERN,
        description="When the key last authenticated, to within about a minute; null if never."
        + _EXPANDED_DOC,
    )
    tm_disable: str | None = Field(
        default=None,
        pattern=TIMESTAMP_PATTERN,
        description="Since when the key is disabled; null while enabled." + _EXPANDED_DOC,
    )
    rotated_to: str | None = Field(
        default=None,
        description="The id of the key that replaced this one by a rotation; null if none."
        + _EXPANDED_DOC,
        json_schema_extra={"format": "uuid"},
    )
    scopes: list[ScopeRule] | None = Field(
        default=None, description="The key's scopes; null: unrestricted." + _EXPANDED_DOC
    )
    allowed_networks: list[str] | None = Field(
        default=None, description="The key's IP allowlist; null: anywhere." + _EXPANDED_DOC
    )


class AccesskeyExpandedWithToken(AccesskeyExpanded):
    token: str = Field(description="The full token: shown in this response and never again.")


class AccesskeyExpandedList(_Strict):
    result: list[AccesskeyExpanded]
    next_page_token: str = Field(
        description='Pass as `page_token` for the next page; "" when this page is empty.'
    )


class AccesskeyRotateRequest(BaseModel):
    grace: int = Field(
        default=0,
        ge=0,
        le=604_800,
        description="Seconds the old key keeps working, 0 (the default) to 604800 (7 days).",
    )


class AccesskeyExpireRequest(BaseModel):
    tm_expire: str = Field(
        pattern=TIMESTAMP_PATTERN,
        description="The new expiry: not in the past and not later than the current one. "
        + TIMESTAMP_DOC,
    )


class CustomerMetadata(_Strict):
    rtp_debug: bool


class Customer(_Strict):
    """VoIPBIN's customer; empty strings are left out, as VoIPBIN does."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str | None = Field(default=None, description="Left out when empty.")
    detail: str | None = Field(default=None, description="Left out when empty.")
    email: str | None = Field(
        default=None, description="Left out when empty.", json_schema_extra={"format": "email"}
    )
    phone_number: str | None = Field(default=None, description="Left out when empty.")
    address: str | None = Field(default=None, description="Left out when empty.")
    webhook_method: str | None = Field(default=None, description="Left out when empty.")
    webhook_uri: str | None = Field(default=None, description="Left out when empty.")
    billing_account_id: str = Field(
        description="Always the nil UUID: keyplane has no billing.",
        json_schema_extra={"format": "uuid"},
    )
    metadata: CustomerMetadata
    email_verified: bool
    status: str = Field(description="`active` (VoIPBIN's lifecycle status).")
    identity_verification_status: str = Field(description="Always `none` in keyplane.")
    tm_deletion_scheduled: str | None = Field(description="Always null in keyplane.")
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_update: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_delete: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class CustomerUpdateRequest(BaseModel):
    """VoIPBIN's PUT /v1.0/customer: every field is replaced; a missing one becomes empty."""

    name: str = ""
    detail: str = ""
    email: str = ""
    phone_number: str = ""
    address: str = ""
    webhook_method: str = Field(default="", description="POST or PUT; empty means POST.")
    webhook_uri: str = Field(
        default="",
        description="Where events are delivered (http or https); empty: no webhook. "
        "Private and loopback addresses are refused unless the operator allows them.",
    )


class WebhookSecret(_Strict):
    secret: str = Field(description="The HMAC-SHA256 key of the Keyplane-Signature header.")


class WebhookDelivery(_Strict):
    id: str = Field(description="The event id: also the Keyplane-Event-Id / Idempotency-Key.")
    type: str
    status: str = Field(description="pending, delivered, failed or skipped (no webhook set).")
    attempts: int
    last_error: str = Field(description="Why the last attempt failed; empty otherwise.")
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_next_attempt: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_delivered: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class WebhookDeliveryList(_Strict):
    result: list[WebhookDelivery]
    next_page_token: str = Field(description='For the next page; "" when this page is empty.')


class AuditActor(_Strict):
    type: str = Field(description="agent, accesskey or operator (the command line).")
    id: str = Field(json_schema_extra={"format": "uuid"})


class AuditEntry(_Strict):
    id: str = Field(json_schema_extra={"format": "uuid"})
    type: str = Field(description="What happened, e.g. accesskey_created, session_created.")
    actor: AuditActor
    subject_id: str = Field(
        description="The key, agent or customer it happened to.",
        json_schema_extra={"format": "uuid"},
    )
    address: str = Field(description="The client address; empty from the command line.")
    request_id: str = Field(description="The X-Request-ID of the request; empty from the CLI.")
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class AuditList(_Strict):
    result: list[AuditEntry]
    next_page_token: str = Field(description='For the next page; "" when this page is empty.')


class Agent(_Strict):
    """``GET /v1.0/me`` for a session: the agent, with VoIPBIN's field names."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    customer_id: str = Field(json_schema_extra={"format": "uuid"})
    username: str
    name: str
    detail: str
    permission: int = Field(description="Permission bits: 1, 16, 32, 64 (see docs/api.md).")
    tm_create: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_update: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)
    tm_delete: str | None = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class AccesskeyIdentity(_Strict):
    """``GET /v1.0/me`` for an access key: who the caller is (keyplane's own object)."""

    type: str = Field(description="Always `accesskey`.")
    id: str = Field(json_schema_extra={"format": "uuid"})
    customer_id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    token_prefix: str
    permission: int = Field(description="Always 32: an access key acts as customer admin.")
    tm_expire: str = Field(pattern=TIMESTAMP_PATTERN, description=TIMESTAMP_DOC)


class ErrorDetail(_Strict):
    status: str = Field(description="INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, …")
    reason: str = Field(description="Machine-readable cause, e.g. RESOURCE_NOT_FOUND.")
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
        409: "The access key is deleted, or not in a state that allows this "
        "(FAILED_PRECONDITION, STATE_INVALID).",
        405: "Method not allowed.",
        429: "Rate limited (RESOURCE_EXHAUSTED); see Retry-After.",
        500: "Internal error (INTERNAL).",
        503: "A dependency is unavailable (UNAVAILABLE).",
    }
    return {code: {"model": ErrorEnvelope, "description": descriptions[code]} for code in codes}


# Where the OpenAPI document keeps named schemas: a nested model of a request
# body (ScopeRule) is referred to there, never to a ``$defs`` of its own that
# the document does not have.
COMPONENT_REF = "#/components/schemas/{model}"


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the route reads itself.

    The schema keeps its nested models under ``$defs`` until the document is
    built, where they and the body itself become named components
    (``web.app``'s ``_name_request_bodies``).
    """
    schema = model.model_json_schema(ref_template=COMPONENT_REF)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
