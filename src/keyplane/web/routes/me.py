"""GET /v1.0/me: who the caller is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from keyplane.domain.records import Agent
from keyplane.domain.views import accesskey_identity_view, agent_view
from keyplane.web.deps import CurrentIdentity, ServicesDep
from keyplane.web.schemas import AccesskeyIdentity, error_responses
from keyplane.web.schemas import Agent as AgentSchema

router = APIRouter(tags=["me"])


@router.get(
    "/v1.0/me",
    response_model=AgentSchema | AccesskeyIdentity,
    responses=error_responses(401, 429, 500, 503),
    summary="The caller: the agent of a session, or the identity of an access key.",
)
async def get_me(identity: CurrentIdentity, services: ServicesDep) -> Any:
    found = await services.customers.me(identity)
    if isinstance(found, Agent):
        return agent_view(found)
    return accesskey_identity_view(found)
