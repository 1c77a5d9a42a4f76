"""Reading JSON bodies the way VoIPBIN clients send them.

The body is parsed as JSON whatever the Content-Type (``curl -d`` sends
form encoding by default). It must be a JSON object; string fields that are
missing or ``null`` read as ``""``; unknown fields are ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from keyplane.errors import InvalidArgument

# NUL cannot be stored in PostgreSQL text, and a lone surrogate (JSON allows
# "\ud800") cannot be encoded as UTF-8 at all: refuse both here, once.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_JSON_BODY")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def json_object(request: Request) -> dict[str, Any]:
    # The size limit is enforced while reading (keyplane.web.limits).
    raw = await request.body()
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
    if _UNSTORABLE.search(value):
        raise InvalidArgument(
            f"'{name}' must not contain NUL or unpaired surrogate characters.",
            reason="INVALID_ARGUMENT",
        )
    return value
