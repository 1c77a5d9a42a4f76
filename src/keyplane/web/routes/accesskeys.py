"""The access key endpoints under /v1.0/accesskeys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from keyplane.domain.networks import parse_networks
from keyplane.domain.pagination import decode_cursor, page_size_from_query
from keyplane.domain.scopes import parse_scopes
from keyplane.domain.timefmt import parse_timestamp
from keyplane.domain.views import EXPAND_ALL, EXPANDABLE, accesskey_view, parse_expand
from keyplane.errors import InvalidArgument
from keyplane.web.body import json_object, string_field
from keyplane.web.deps import CurrentIdentity, ServicesDep, services_of
from keyplane.web.responses import built
from keyplane.web.schemas import (
    Accesskey,
    AccesskeyCreated,
    AccesskeyCreateRequest,
    AccesskeyExpanded,
    AccesskeyExpandedList,
    AccesskeyExpandedWithToken,
    AccesskeyExpireRequest,
    AccesskeyRotateRequest,
    AccesskeyUpdateRequest,
    error_responses,
    request_body,
)

router = APIRouter(prefix="/v1.0/accesskeys", tags=["accesskeys"])
_ERRORS = error_responses(400, 401, 403, 404, 429, 500, 503)
_ID_ERRORS = error_responses(400, 401, 403, 404, 409, 429, 500, 503)


_ID_PATH = Path(
    description="The access key's id.",
    json_schema_extra={"format": "uuid"},
)


_EXPAND_NAME = "(?:" + "|".join((*EXPANDABLE, "all")) + ")"
# Names separated by commas, spaces around them allowed, as ``parse_expand`` reads them.
_EXPAND_PATTERN = f"^ *(?:{_EXPAND_NAME} *)?(?:, *(?:{_EXPAND_NAME} *)?)*$"
_EXPAND_QUERY = Query(
    default=None,
    description="Comma-separated fields to add beyond VoIPBIN's object: "
    + ", ".join(f"`{name}`" for name in EXPANDABLE)
    + ", or `all`. Without it the object is exactly VoIPBIN's.",
    examples=["tm_last_used"],
    # Documented, not enforced by FastAPI: ``_expand`` answers an unknown name itself,
    # naming the known ones. Generators and fuzzers learn the rule from it.
    json_schema_extra={"pattern": _EXPAND_PATTERN},
)


def _expand(raw: str | None) -> frozenset[str]:
    try:
        return parse_expand(raw)
    except ValueError as error:
        raise InvalidArgument(
            f"expand: {error}; known names: {', '.join(EXPANDABLE)}, all.",
            reason="INVALID_REQUEST_PARAMETER",
        ) from None


def _key_id(raw: str) -> uuid.UUID:
    """A UUID, and not the nil UUID (VoIPBIN refuses both with INVALID_ID)."""
    try:
        key_id = uuid.UUID(raw)
    except ValueError:
        key_id = uuid.UUID(int=0)
    if key_id.int == 0:
        raise InvalidArgument("The access key id is not a valid UUID.", reason="INVALID_ID")
    return key_id


@router.post(
    "",
    response_model=AccesskeyCreated,
    response_model_exclude_unset=True,
    responses=_ERRORS,
    openapi_extra=request_body(AccesskeyCreateRequest),
    summary="Create an access key. The token is in this response only.",
)
async def create_accesskey(
    request: Request, identity: CurrentIdentity, services: ServicesDep
) -> Any:
    body = await json_object(request)
    name, detail = string_field(body, "name"), string_field(body, "detail")
    try:
        scopes = parse_scopes(body.get("scopes"))
    except ValueError as error:
        raise InvalidArgument(f"'scopes': {error}.") from None
    try:
        networks = parse_networks(body.get("allowed_networks"))
    except ValueError as error:
        raise InvalidArgument(f"'allowed_networks': {error}.") from None
    key, token = await services.accesskeys.create(
        identity,
        identity.customer_id,
        name=name,
        detail=detail,
        expire=body.get("expire"),
        scopes=scopes,
        allowed_networks=networks,
    )
    # A client that asked for restrictions sees them; VoIPBIN's clients never send any.
    shown = {"scopes"} if scopes else set()
    if networks:
        shown.add("allowed_networks")
    return accesskey_view(key, token, expand=frozenset(shown))


@router.get(
    "",
    response_model=AccesskeyExpandedList,
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="List the caller's customer's live access keys, newest first.",
)
async def list_accesskeys(
    request: Request,
    identity: CurrentIdentity,
    page_size: str | None = Query(
        default=None,
        description="An integer, 1 to 100; another integer means 100; anything else is 400.",
        examples=["100"],
        # Documented only (the check above answers 400 in the envelope): what is accepted.
        json_schema_extra={"pattern": "^[+-]?[0-9]+$"},
    ),
    page_token: str | None = Query(
        default=None, description="`next_page_token` of the previous page (or a VoIPBIN timestamp)."
    ),
    expand: str | None = _EXPAND_QUERY,
) -> Any:
    fields = _expand(expand)
    cursor = None
    if page_token:
        try:
            cursor = decode_cursor(page_token)
        except ValueError:
            raise InvalidArgument(
                "page_token is not a token from next_page_token.", reason="INVALID_PAGE_TOKEN"
            ) from None
    try:
        size = page_size_from_query(page_size)
    except ValueError:
        raise InvalidArgument(
            "page_size is not an integer: give a number from 1 to 100.",
            reason="INVALID_REQUEST_PARAMETER",
        ) from None
    page = await services_of(request).accesskeys.list_page(
        identity, identity.customer_id, page_size=size, cursor=cursor
    )
    return built(
        {
            "result": [accesskey_view(key, expand=fields) for key in page.items],
            "next_page_token": page.next_page_token,
        }
    )


@router.get(
    "/{accesskey_id}",
    response_model=AccesskeyExpanded,
    response_model_exclude_unset=True,
    responses=_ID_ERRORS,
    summary="One key.",
)
async def get_accesskey(
    accesskey_id: Annotated[str, _ID_PATH],
    request: Request,
    identity: CurrentIdentity,
    expand: str | None = _EXPAND_QUERY,
) -> Any:
    fields = _expand(expand)
    # The services without a dependency of their own: one pass less on every read.
    key = await services_of(request).accesskeys.get(identity, _key_id(accesskey_id))
    return built(accesskey_view(key, expand=fields))


@router.put(
    "/{accesskey_id}",
    response_model=Accesskey,
    responses=_ID_ERRORS,
    openapi_extra=request_body(AccesskeyUpdateRequest),
    summary="Change name and detail (missing fields become empty).",
)
async def update_accesskey(
    accesskey_id: Annotated[str, _ID_PATH],
    request: Request,
    identity: CurrentIdentity,
    services: ServicesDep,
) -> Any:
    key_id = _key_id(accesskey_id)
    body = await json_object(request)
    key = await services.accesskeys.update(
        identity, key_id, name=string_field(body, "name"), detail=string_field(body, "detail")
    )
    return accesskey_view(key)


@router.delete(
    "/{accesskey_id}",
    response_model=Accesskey,
    responses=_ID_ERRORS,
    summary="Delete a key (soft); it stops authenticating at once.",
)
async def delete_accesskey(
    accesskey_id: Annotated[str, _ID_PATH], identity: CurrentIdentity, services: ServicesDep
) -> Any:
    return accesskey_view(await services.accesskeys.delete(identity, _key_id(accesskey_id)))


# --- the lifecycle beyond VoIPBIN: these answer with every expanded field -------------------------


@router.post(
    "/{accesskey_id}/disable",
    response_model=AccesskeyExpanded,
    responses=_ID_ERRORS,
    summary="Disable a key: refused everywhere (401) until enabled. Idempotent.",
)
async def disable_accesskey(
    accesskey_id: Annotated[str, _ID_PATH], identity: CurrentIdentity, services: ServicesDep
) -> Any:
    key = await services.accesskeys.disable(identity, _key_id(accesskey_id))
    return accesskey_view(key, expand=EXPAND_ALL)


@router.post(
    "/{accesskey_id}/enable",
    response_model=AccesskeyExpanded,
    responses=_ID_ERRORS,
    summary="Enable a disabled key again. Idempotent.",
)
async def enable_accesskey(
    accesskey_id: Annotated[str, _ID_PATH], identity: CurrentIdentity, services: ServicesDep
) -> Any:
    key = await services.accesskeys.enable(identity, _key_id(accesskey_id))
    return accesskey_view(key, expand=EXPAND_ALL)


@router.post(
    "/{accesskey_id}/rotate",
    response_model=AccesskeyExpandedWithToken,
    responses=_ID_ERRORS,
    openapi_extra=request_body(AccesskeyRotateRequest),
    summary="Replace a key by a new one (token shown once); the old one ends after `grace`.",
)
async def rotate_accesskey(
    accesskey_id: Annotated[str, _ID_PATH],
    request: Request,
    identity: CurrentIdentity,
    services: ServicesDep,
) -> Any:
    key_id = _key_id(accesskey_id)
    body = await _optional_json_object(request)
    new, token, _ = await services.accesskeys.rotate(identity, key_id, grace=body.get("grace"))
    return accesskey_view(new, token, expand=EXPAND_ALL)


@router.post(
    "/{accesskey_id}/expire",
    response_model=AccesskeyExpanded,
    responses=_ID_ERRORS,
    openapi_extra=request_body(AccesskeyExpireRequest),
    summary="Shorten a key's expiry (lengthening is refused: rotate instead).",
)
async def shorten_accesskey_expiry(
    accesskey_id: Annotated[str, _ID_PATH],
    request: Request,
    identity: CurrentIdentity,
    services: ServicesDep,
) -> Any:
    key_id = _key_id(accesskey_id)
    raw = string_field(await json_object(request), "tm_expire")
    try:
        moment = parse_timestamp(raw)
    except ValueError:
        raise InvalidArgument(
            "'tm_expire' must be a timestamp of the form YYYY-MM-DDTHH:MM:SS.ffffffZ (UTC)."
        ) from None
    key = await services.accesskeys.shorten_expiry(identity, key_id, moment)
    return accesskey_view(key, expand=EXPAND_ALL)


async def _optional_json_object(request: Request) -> dict[str, Any]:
    """A JSON object, or an empty one when the body is empty (``curl -X POST`` sends none)."""
    if not await request.body():
        return {}
    return await json_object(request)
