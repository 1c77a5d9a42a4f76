"""GET /v1.0/customer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from keyplane.domain.views import customer_view
from keyplane.web.deps import CurrentIdentity, ServicesDep
from keyplane.web.schemas import Customer, error_responses

router = APIRouter(tags=["customer"])


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
