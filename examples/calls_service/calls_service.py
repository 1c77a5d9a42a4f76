"""A small business API behind a keyplane gateway: ``GET``/``POST /v1.0/calls``.

It does no authentication of its own. It trusts exactly one thing: the
identity headers the gateway sets after keyplane's ``GET /auth/verify``
(``X-Keyplane-Customer-Id`` and friends), and only on connections from the
gateway's address (``CALLS_TRUSTED_PEERS``, default ``127.0.0.1``). Each
customer's calls are kept in memory, keyed by that header, so one customer
never sees another's.

``CALLS_RECORD=/path/file.jsonl`` appends every request as it arrived
(method, raw path and query, headers) to that file, so a test can check that
no credential ever reached this service.

Run: ``python examples/calls_service/calls_service.py --port 8081``
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

IDENTITY_HEADERS = (
    "x-keyplane-customer-id",
    "x-keyplane-identity-type",
    "x-keyplane-identity-id",
    "x-keyplane-permission",
    "x-keyplane-token-prefix",
    "x-keyplane-request-id",
)


def _refusal(status: int, reason: str, message: str) -> JSONResponse:
    error = {"status": "UNAUTHENTICATED", "reason": reason, "message": message}
    return JSONResponse({"error": error}, status_code=status)


def create_app(trusted_peers: frozenset[str], record: str | None) -> Starlette:
    calls: dict[str, list[dict[str, Any]]] = {}

    def remember(request: Request) -> None:
        if record is None:
            return
        entry = {
            "method": request.method,
            "path": request.scope["path"],
            "query": request.scope["query_string"].decode("latin-1"),
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
            ],
        }
        with open(record, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(entry) + "\n")

    def caller(request: Request) -> dict[str, str] | None:
        peer = request.client.host if request.client else ""
        customer = request.headers.get("x-keyplane-customer-id")
        if peer not in trusted_peers or not customer:
            return None
        return {
            name.removeprefix("x-keyplane-"): request.headers.get(name, "")
            for name in IDENTITY_HEADERS
        }

    async def calls_endpoint(request: Request) -> JSONResponse:
        remember(request)
        identity = caller(request)
        if identity is None:
            return _refusal(401, "AUTHENTICATION_REQUIRED", "Call this API through the gateway.")
        mine = calls.setdefault(identity["customer-id"], [])
        if request.method == "POST":
            body = await request.json() if await request.body() else {}
            call = {
                "id": str(uuid.uuid4()),
                "customer_id": identity["customer-id"],
                "source": str(body.get("source", "")),
                "destination": str(body.get("destination", "")),
                "created_by": f"{identity['identity-type']}:{identity['identity-id']}",
                "tm_create": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            mine.append(call)
            return JSONResponse(call)
        return JSONResponse({"result": list(reversed(mine)), "next_page_token": ""})

    return Starlette(routes=[Route("/v1.0/calls", calls_endpoint, methods=["GET", "POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    trusted = frozenset(os.environ.get("CALLS_TRUSTED_PEERS", "127.0.0.1").split(","))
    app = create_app(trusted, os.environ.get("CALLS_RECORD"))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
