"""``GET /metrics``: Prometheus's text format, this worker's counts.

Open unless ``KEYPLANE_METRICS_TOKEN`` is set; then only a scrape that sends
it as ``Authorization: Bearer ...`` is answered.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keyplane.errors import Unauthenticated
from keyplane.metrics import CONTENT_TYPE
from keyplane.web.deps import ServicesDep

router = APIRouter(tags=["health"])


class MetricsTokenRequired(Unauthenticated):
    default_reason = "METRICS_TOKEN_REQUIRED"
    default_message = (
        "/metrics needs the scrape token set in KEYPLANE_METRICS_TOKEN, sent as "
        "'Authorization: Bearer <token>' (in Prometheus: authorization.credentials)."
    )


def _bearer(request: Request) -> bytes:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return credentials.strip().encode("utf-8", "surrogateescape")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    # compare_digest: the time taken says nothing about how much of a guess was right.
    if token is not None and not hmac.compare_digest(
        _bearer(request), token.get_secret_value().encode()
    ):
        raise MetricsTokenRequired()
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)
