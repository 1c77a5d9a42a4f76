"""The caller's customer: VoIPBIN's GET and PUT /v1.0/customer, and its webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from keyplane.domain.pagination import page_size_from_query, seq_from_page_token
from keyplane.domain.views import customer_view, delivery_view
from keyplane.errors import InvalidArgument
from keyplane.web.body import json_object, string_field
from keyplane.web.deps import CurrentIdentity, ServicesDep
from keyplane.web.schemas import (
    Customer,
    CustomerUpdateRequest,
    WebhookDeliveryList,
    WebhookSecret,
    error_responses,
    request_body,
)

router = APIRouter(tags=["customer"])
_FIELDS = tuple(CustomerUpdateRequest.model_fields)


@router.get(
    "/v1.0/customer",
    response_model=Customer,
    response_model_exclude_unset=True,  # empty strings are left out, as VoIPBIN does
    responses=error_responses(401, 404, 429, 500, 503),
    summary="The caller's customer.",
)
async def get_customer(identity: CurrentIdentity, services: ServicesDep) -> Any:
    customer = await services.customers.get_customer(identity, identity.customer_id)
    return customer_view(customer)


@router.put(
    "/v1.0/customer",
    response_model=Customer,
    response_model_exclude_unset=True,
    responses=error_responses(400, 401, 403, 404, 429, 500, 503),
    openapi_extra=request_body(CustomerUpdateRequest),
    summary="Change the caller's customer, its webhook included (every field is replaced).",
)
async def update_customer(
    request: Request, identity: CurrentIdentity, services: ServicesDep
) -> Any:
    body = await json_object(request)
    profile = {name: string_field(body, name) for name in _FIELDS}
    customer = await services.customers.update_customer(
        identity,
        identity.customer_id,
        profile=profile,
        webhook_allowed=services.settings.webhook_networks,
    )
    return customer_view(customer)


@router.get(
    "/v1.0/customer/webhook_secret",
    response_model=WebhookSecret,
    responses=error_responses(401, 403, 404, 429, 500, 503),
    summary="The secret that signs the customer's webhook deliveries.",
)
async def get_webhook_secret(identity: CurrentIdentity, services: ServicesDep) -> Any:
    return {"secret": await services.webhooks.secret(identity, identity.customer_id)}


@router.post(
    "/v1.0/customer/webhook_secret",
    response_model=WebhookSecret,
    responses=error_responses(401, 403, 404, 429, 500, 503),
    summary="Replace the webhook signing secret; deliveries are signed with the new one at once.",
)
async def rotate_webhook_secret(identity: CurrentIdentity, services: ServicesDep) -> Any:
    return {"secret": await services.webhooks.rotate_secret(identity, identity.customer_id)}


@router.get(
    "/v1.0/customer/webhook_deliveries",
    response_model=WebhookDeliveryList,
    responses=error_responses(400, 401, 403, 404, 429, 500, 503),
    summary="The customer's events and how their delivery went, newest first.",
)
async def list_webhook_deliveries(
    identity: CurrentIdentity,
    services: ServicesDep,
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
    items = await services.webhooks.deliveries(
        identity, identity.customer_id, limit=size, before=before
    )
    return {
        "result": [delivery_view(item) for item in items],
        "next_page_token": str(items[-1].seq) if items else "",
    }
