"""POST /auth/login and POST /auth/logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keyplane.web.body import json_object, string_field
from keyplane.web.credentials import find_credential
from keyplane.web.deps import (
    CurrentIdentity,
    ServicesDep,
    bind_origin,
    client_address,
    request_cookies,
)
from keyplane.web.schemas import LoginRequest, LoginResponse, error_responses, request_body

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/login",
    response_model=LoginResponse,
    responses=error_responses(400, 429, 500, 503),
    openapi_extra=request_body(LoginRequest),
    summary="Log in with a username and password; returns a session token.",
)
async def login(request: Request, response: Response, services: ServicesDep) -> Any:
    """A failed or malformed login is 400, as VoIPBIN answers it."""
    bind_origin(request)
    body = await json_object(request)
    agent, token = await services.auth.login(
        string_field(body, "username"),
        string_field(body, "password"),
        client=client_address(request),
    )
    # The cookie VoIPBIN sets, which browser clients rely on.
    response.set_cookie(
        "token",
        token,
        max_age=services.settings.session_ttl,
        path="/",
        secure=services.settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return {"username": agent.username, "token": token}


@router.post(
    "/auth/logout",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 429, 500, 503),
    summary="End the session of the session token sent; refused on every replica from then on.",
)
async def logout(request: Request, identity: CurrentIdentity, services: ServicesDep) -> Response:
    """The token is refused everywhere within a second, and the ``token`` cookie is removed.

    An access key is not a session: 403 (delete it instead).
    """
    credential = find_credential(
        request_cookies(request), request.query_params, request.headers.get("authorization")
    )
    await services.sessions.end(identity, credential.value if credential else "")
    response = Response(status_code=204)
    response.delete_cookie(
        "token",
        path="/",
        secure=services.settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response
