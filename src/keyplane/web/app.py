"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from keyplane import __version__
from keyplane.logs import configure_logging
from keyplane.services.container import Services, build_services
from keyplane.settings import Settings
from keyplane.web.admin import install_admin
from keyplane.web.connections import apply_connection_limits
from keyplane.web.deps import SECURITY_SCHEMES, current_identity
from keyplane.web.docs_ui import install_docs_ui
from keyplane.web.envelope import install_error_handlers
from keyplane.web.limits import BodyLimitMiddleware
from keyplane.web.methods import HeadAsGetMiddleware
from keyplane.web.middleware import RequestContextMiddleware
from keyplane.web.routes import accesskeys, audit, auth, customer, health, me, metrics
from keyplane.web.schemas import COMPONENT_REF
from keyplane.web.verify import GatewayVerification, is_verify_path

DESCRIPTION = """\
Issue, manage and verify API access keys and login sessions.
Compatible with the VoIPBIN Accesskey API.

Authenticate with an access key (`Authorization: Bearer vb_…`, `?accesskey=`,
or the `accesskey` cookie) or a session token from `POST /auth/login`
(`Authorization: Bearer <jwt>`, `?token=`, or the `token` cookie). Session
token sources take precedence over access key sources.

Every error has the form
`{"error": {"status", "reason", "message", "request_id"}}`.
"""

OPENAPI_TAGS = ("health", "auth", "customer", "me", "accesskeys", "audit")


class KeyplaneApp(FastAPI):
    """FastAPI, with gateway checks answered before the framework sees them.

    ``/auth/verify`` is asked on every request of every protected API: it skips
    FastAPI's own layers (telemetry, error and body-limit middleware, routing)
    and keyplane's, and is answered by ``GatewayVerification`` (web/verify.py),
    which has its own last line of defence.
    """

    verification: GatewayVerification

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_verify_path(scope["path"]):
            # No request-wide database budget here: a verification uses the
            # database at most once (a cache miss), and that read has its own
            # KEYPLANE_DATABASE_TIMEOUT, the same bound.
            await self.verification(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """Build the app. Pass ``services`` to share them (tests); else they are built here."""
    if not structlog.is_configured():
        configure_logging(settings.log_level, settings.log_format)  # redaction, always
    owned = services is None
    app_services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await app_services.start()
        try:
            yield
        finally:
            if owned:
                await app_services.close()

    app = KeyplaneApp(
        title="keyplane",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs_ui, not a CDN
        redoc_url=None,
        # A trailing slash is a 404, never a redirect that would repeat the
        # query string (and a credential in it) in a Location header.
        redirect_slashes=False,
        # The document's order of sections, whatever the order of matching below.
        openapi_tags=[{"name": name} for name in OPENAPI_TAGS],
    )
    app.state.services = app_services
    app.state.settings = settings
    install_error_handlers(app)
    # Added first runs innermost: the request context wraps the other two, and
    # gives each request one database timeout (KEYPLANE_DATABASE_TIMEOUT).
    app.add_middleware(BodyLimitMiddleware, body_timeout=settings.body_timeout)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestContextMiddleware, database_budget=app_services.database.one_budget)
    # Gateway checks are answered before the framework (KeyplaneApp, web/verify.py).
    app.verification = GatewayVerification(app.router, auth=app_services.auth)
    install_docs_ui(app, title="keyplane")
    # The access key routes first: they take most API requests, and each router
    # matched before them costs every one of those requests its regular expressions.
    app.include_router(accesskeys.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(auth.router)
    app.include_router(customer.router)
    app.include_router(me.router)
    app.include_router(audit.router)
    # Last: API requests are matched before the admin page's routes are looked at.
    install_admin(app, settings.resolve_jwt_secret())
    _document_errors_truthfully(app)
    _name_request_bodies(app)
    _document_security(app)
    _document_uuid_parameters(app)
    return app


def _document_errors_truthfully(app: FastAPI) -> None:
    """Validation errors are 400 envelopes here, never FastAPI's default 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _name_request_bodies(app: FastAPI) -> None:
    """Each body a route reads itself (``schemas.request_body``) is a named component.

    Its nested models move from the body's ``$defs`` to the components, where
    its ``$ref``s point, so every reference in the document resolves; a name
    already taken by another schema is a programming error, found here.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})

        def add(name: str, component: dict[str, Any]) -> None:
            if components.setdefault(name, component) != component:
                raise RuntimeError(f"Two different schemas are named {name} in /openapi.json.")

        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                content = operation.get("requestBody", {}).get("content", {})
                for media in content.values():
                    body = media.get("schema", {})
                    if "title" not in body or "$ref" in body:
                        continue  # FastAPI's own (already a reference), or named already
                    for name, nested in body.pop("$defs", {}).items():
                        add(name, nested)
                    add(body["title"], body)
                    media["schema"] = {"$ref": COMPONENT_REF.format(model=body["title"])}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, those of included routers too (kept nested, without extra prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _needs_identity(dependant: Dependant) -> bool:
    return any(
        dependency.call is current_identity or _needs_identity(dependency)
        for dependency in dependant.dependencies
    )


def _document_security(app: FastAPI) -> None:
    """Routes that need the caller's identity accept every credential form.

    The security schemes are written into the document here rather than
    declared as dependencies, which FastAPI would run on every request.
    """
    generate = app.openapi
    protected = {
        (method.lower(), route.path_format)
        for route in _api_routes(app.routes)
        if _needs_identity(route.dependant)
        for method in route.methods or ()
    }
    schemes = {
        scheme.scheme_name: jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        for scheme in SECURITY_SCHEMES
    }

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema.setdefault("components", {})["securitySchemes"] = schemes
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) in protected:
                    operation["security"] = [{name: []} for name in schemes]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_uuid_parameters(app: FastAPI) -> None:
    """Path parameters named ``*_id`` are UUIDs (a malformed one is 400 ``INVALID_ID``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path" and parameter.get("name", "").endswith("_id"):
                        parameter.setdefault("schema", {})["format"] = "uuid"
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_environment() -> FastAPI:
    """Entry point for server worker processes: settings from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    apply_connection_limits(settings)
    return create_app(settings)
