"""``GET /metrics``: Prometheus's text format, this worker's counts. No credentials."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from keyplane.metrics import CONTENT_TYPE
from keyplane.web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
