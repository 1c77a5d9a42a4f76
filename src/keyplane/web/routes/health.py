"""Liveness and readiness, for load balancers and orchestrators. No credentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from keyplane.errors import Unavailable
from keyplane.web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up.")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Ready to serve: the database (and Redis, when configured) answer.",
    responses={503: {"description": "A dependency is unavailable (UNAVAILABLE)."}},
)
async def ready(services: ServicesDep) -> Any:
    checks = await services.readiness()
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        raise Unavailable(f"Not ready: {', '.join(failing)} unavailable.", reason="NOT_READY")
    return {"status": "ok", "checks": checks}
