"""The baselines keyplane is measured against, served by the same server software.

``bare``: a raw ASGI app answering 200 with an empty body, the ceiling of
uvicorn + uvloop + httptools on this machine. ``minimal``: a FastAPI route
returning a small JSON object, the cost of the framework alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"0")],
}
_BODY = {"type": "http.response.body", "body": b""}


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


minimal = FastAPI()


@minimal.get("/item")
async def item() -> dict[str, object]:
    return {"id": "5d6f6a3c-0000-4000-8000-000000000000", "name": "item", "permission": 1}
