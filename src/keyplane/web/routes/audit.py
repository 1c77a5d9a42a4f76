"""GET /v1.0/audit: the customer's audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from keyplane.domain.audit import audit_types_from_query
from keyplane.domain.pagination import page_size_from_query, seq_from_page_token
from keyplane.domain.timefmt import parse_timestamp
from keyplane.domain.views import audit_view
from keyplane.errors import InvalidArgument
from keyplane.web.deps import CurrentIdentity, ServicesDep
from keyplane.web.schemas import AuditList, error_responses

router = APIRouter(tags=["audit"])


def _moment(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise InvalidArgument(
            f"{name} must be a timestamp of the form YYYY-MM-DDTHH:MM:SS.ffffffZ.",
            reason="INVALID_REQUEST_PARAMETER",
        ) from None


@router.get(
    "/v1.0/audit",
    response_model=AuditList,
    responses=error_responses(400, 401, 403, 429, 500, 503),
    summary="Who changed what in the caller's customer, newest first.",
)
async def list_audit(
    identity: CurrentIdentity,
    services: ServicesDep,
    type: str | None = Query(
        default=None, description="Comma-separated entry types, e.g. accesskey_deleted."
    ),
    since: str | None = Query(default=None, description="From this moment on (inclusive)."),
    until: str | None = Query(default=None, description="Before this moment."),
    page_size: str | None = Query(default=None, description="1 to 100 (default 100)."),
    page_token: str | None = Query(default=None, description="`next_page_token` of a page."),
) -> Any:
    try:
        size = page_size_from_query(page_size)
        before = seq_from_page_token(page_token)
    except ValueError:
        raise InvalidArgument(
            "page_size must be an integer and page_token a token from next_page_token.",
            reason="INVALID_REQUEST_PARAMETER",
        ) from None
    try:
        types = audit_types_from_query(type)
    except ValueError as error:
        raise InvalidArgument(str(error), reason="INVALID_REQUEST_PARAMETER") from None
    entries = await services.audit.page(
        identity,
        identity.customer_id,
        types=types,
        since=_moment(since, "since"),
        until=_moment(until, "until"),
        before=before,
        limit=size,
    )
    return {
        "result": [audit_view(entry) for entry in entries],
        "next_page_token": str(entries[-1].seq) if entries else "",
    }
