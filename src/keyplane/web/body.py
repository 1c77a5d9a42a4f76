"""Reading JSON bodies the way VoIPBIN clients send them.

The body is parsed as JSON whatever the Content-Type (``curl -d`` sends
form encoding by default). It must be a JSON object; string fields that are
missing or ``null`` read as ``""``; unknown fields are ignored.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from keyplane.errors import InvalidArgument

MAX_BODY_BYTES = 64 * 1024


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_JSON_BODY")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_large() -> InvalidArgument:
    return InvalidArgument(
        f"The request body is larger than {MAX_BODY_BYTES} bytes.", reason="BODY_TOO_LARGE"
    )


async def json_object(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise _invalid("The request body is not valid JSON; send a JSON object.") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


def string_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"'{name}' must be a string.")
    return value
