"""One database budget per request: ``KEYPLANE_DATABASE_TIMEOUT`` holds from request to response.

Without it each statement would have the whole timeout, and a request that
waits for a pooled connection, then a read, then a write could take several.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keyplane.services.container import Services


class DatabaseDeadline:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._services.database.one_budget():
            await self.app(scope, receive, send)
