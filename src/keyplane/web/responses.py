"""Responses of objects keyplane built itself (``keyplane.domain.views``).

A route's ``response_model`` documents the object in /openapi.json; FastAPI
would also validate every returned object against it and serialize it again,
a pass that costs more than the read it answers. The views are already the
documented JSON, so read routes on hot paths return them as they are.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def built(view: dict[str, Any]) -> JSONResponse:
    """``view`` as the response body, without a response-model pass."""
    return JSONResponse(view)
