"""The /admin routes: log in and out, the customer's keys, and its webhook settings.

Every change goes through the same services as the API, with the caller's
identity, so what the API refuses the page refuses. Forms are read with the
standard library (``application/x-www-form-urlencoded``), after the body limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from keyplane.domain.networks import parse_networks
from keyplane.domain.pagination import Cursor, decode_cursor, encode_cursor
from keyplane.domain.permissions import Identity, Permission, has_permission, may_keep_secrets
from keyplane.domain.records import Accesskey, Agent, Customer
from keyplane.domain.scopes import READ_ONLY, parse_scopes
from keyplane.errors import (
    InvalidArgument,
    KeyplaneError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from keyplane.services.accesskeys import MAX_EXPIRE
from keyplane.services.auth import Credential
from keyplane.services.container import Services
from keyplane.web.admin import present
from keyplane.web.admin.render import error_page, page, status_of
from keyplane.web.admin.session import (
    COOKIE_PATH,
    CSRF_FIELD,
    FLASH_COOKIE,
    FLASH_PATH,
    FLASH_SECONDS,
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    SESSION_COOKIE,
    LoginForm,
    csrf_matches,
    csrf_token,
    from_another_origin,
    login_form_valid,
    new_login_form,
    open_flash,
    seal_flash,
)
from keyplane.web.credentials import MALFORMED_COOKIE, parse_cookies
from keyplane.web.deps import ServicesDep, bind_origin, client_address
from keyplane.web.envelope import error_headers

router = APIRouter(prefix="/admin", include_in_schema=False)
PAGE_SIZE = 20
FILTER_BATCH = 100
FILTER_SCAN_LIMIT = 20 * FILTER_BATCH  # keys read per filtered page, at most
DELIVERIES_SHOWN = 20
MAX_FORM_FIELDS = 16
KEY_ADMINS = int(Permission.CUSTOMER_ADMIN)
SETTINGS_EDITORS = int(Permission.CUSTOMER_ADMIN | Permission.CUSTOMER_MANAGER)


class CsrfRefused(PermissionDenied):
    default_reason = "CSRF_TOKEN_INVALID"
    default_message = (
        "This form was refused: it did not carry this page's security token "
        "(it may have come from another site, or the page is older than the session). "
        "Reload the page and try again."
    )


@dataclass(frozen=True, slots=True)
class AdminSession:
    identity: Identity
    agent: Agent
    customer: Customer
    csrf: str

    @property
    def manages_keys(self) -> bool:
        return has_permission(self.identity, self.identity.customer_id, KEY_ADMINS)

    @property
    def edits_settings(self) -> bool:
        return has_permission(self.identity, self.identity.customer_id, SETTINGS_EDITORS)

    @property
    def sets_webhook(self) -> bool:
        """Saving a new webhook is offered only to those the service lets change it."""
        return may_keep_secrets(self.identity, self.identity.customer_id)


class LoginNeeded(Exception):
    """No session, or one that is no longer valid: back to the login form."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _to_login(request: Request, reason: str = "") -> RedirectResponse:
    target = f"{COOKIE_PATH}/login" + (f"?{urlencode({'done': reason})}" if reason else "")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )
    return response


def _cookie(request: Request, name: str) -> str:
    return parse_cookies(request.headers.get("cookie"), {name}).get(name, "")


async def _session(request: Request, services: Services) -> AdminSession:
    bind_origin(request)
    value = _cookie(request, SESSION_COOKIE)
    if not value:
        raise LoginNeeded()
    try:
        identity, _ = await services.auth.authenticate(
            Credential("session", value, "cookie"),
            client=client_address(request),
            method=request.method,
            path=request.url.path,
        )
        agent = await services.customers.me(identity)
        customer = await services.customers.get_customer(identity, identity.customer_id)
    except Unauthenticated:
        raise LoginNeeded() from None
    if not isinstance(agent, Agent):
        raise LoginNeeded()
    key: bytes = request.app.state.admin_csrf_key
    return AdminSession(identity, agent, customer, csrf_token(key, value))


async def _form(request: Request) -> dict[str, str]:
    """The form's fields; a body with more fields than any form has counts as empty."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))
    except ValueError:
        return {}  # no CSRF token either: refused


def _context(session: AdminSession, section: str) -> dict[str, Any]:
    return {"session": session, "section": section}


Action = Callable[[AdminSession, dict[str, str]], Awaitable[Response]]


async def _guarded(
    request: Request, services: Services, action: Action, *, changes: bool = False
) -> Response:
    """Run ``action`` for a valid session; a change also needs the form's CSRF token.

    No session: the login form. A refusal from a service: a plain error page.
    """
    try:
        session = await _session(request, services)
    except LoginNeeded:
        return _to_login(request)
    except KeyplaneError as error:  # rate limited, database unavailable
        return error_page(request, error, session=None)
    form: dict[str, str] = {}
    if changes:
        form = await _form(request)
        if _another_origin(request) or not csrf_matches(session.csrf, form.get(CSRF_FIELD)):
            return error_page(request, CsrfRefused(), **_context(session, ""))
    try:
        return await action(session, form)
    except KeyplaneError as error:
        return error_page(request, error, **_context(session, ""))


# ---------------------------------------------------------------- log in and out


@router.get("")
async def admin_home(request: Request, services: ServicesDep) -> Response:
    """The first page the agent may see: the keys, or the settings for a manager."""

    async def home(session: AdminSession, _form: dict[str, str]) -> Response:
        first = "settings" if session.edits_settings and not session.manages_keys else "keys"
        return RedirectResponse(f"{COOKIE_PATH}/{first}", status_code=303)

    return await _guarded(request, services, home)


def _another_origin(request: Request) -> bool:
    return from_another_origin(request.headers.get("sec-fetch-site"))


def _new_login_form(request: Request, services: Services) -> LoginForm:
    return new_login_form(request.app.state.admin_login_key, services.clock.now())


def _login_page(
    request: Request,
    form: LoginForm,
    *,
    username: str = "",
    error: KeyplaneError | None = None,
    done: str = "",
) -> Response:
    response = page(
        request,
        "login.html",
        status_code=200 if error is None else status_of(error),
        headers=None if error is None else error_headers(error),
        session=None,
        csrf=form.token,
        username=username,
        error=error,
        done=done,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        form.nonce,
        max_age=LOGIN_FORM_SECONDS,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login")
async def login_form(request: Request, services: ServicesDep, done: str = "") -> Response:
    """The form; an agent already logged in goes on to the page."""
    try:
        await _session(request, services)
    except (LoginNeeded, KeyplaneError):
        return _login_page(request, _new_login_form(request, services), done=done)
    return RedirectResponse(COOKIE_PATH, status_code=303)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    """The same rate limits, lockouts and failure message as ``POST /auth/login``.

    The form must carry the token issued with the nonce of its cookie, from this
    origin: a pair planted by another site is refused before any password check.
    """
    bind_origin(request)
    form = await _form(request)
    nonce = _cookie(request, LOGIN_COOKIE)
    key: bytes = request.app.state.admin_login_key
    if (
        _another_origin(request)
        or nonce == MALFORMED_COOKIE
        or not login_form_valid(key, nonce, form.get(CSRF_FIELD), services.clock.now())
    ):
        return error_page(request, CsrfRefused(), session=None)
    username = form.get("username", "")
    try:
        _, token = await services.auth.login(
            username, form.get("password", ""), client=client_address(request)
        )
    except KeyplaneError as error:
        return _login_page(
            request, _new_login_form(request, services), username=username, error=error
        )
    response = RedirectResponse(COOKIE_PATH, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=services.settings.session_ttl,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(
        LOGIN_COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )
    return response


@router.post("/logout")
async def logout(request: Request, services: ServicesDep) -> Response:
    """Ends the session on every replica (the token is refused from then on), not only here."""

    async def end(session: AdminSession, _form: dict[str, str]) -> Response:
        await services.sessions.end(session.identity, _cookie(request, SESSION_COOKIE))
        return _to_login(request, "logged_out")

    return await _guarded(request, services, end, changes=True)


# ---------------------------------------------------------------- keys


async def _visible_page(
    services: Services, session: AdminSession, name_filter: str, cursor: Cursor | None
) -> tuple[list[Accesskey], str]:
    """A page of keys, newest first; with a filter, read on until a page is full.

    The next token is the cursor of the last key read, so paging a filtered
    list still visits every key once; at most ``FILTER_SCAN_LIMIT`` keys are
    read for one page.
    """
    wanted = name_filter.strip().casefold()
    identity, customer_id = session.identity, session.identity.customer_id
    if not wanted:
        found = await services.accesskeys.list_page(
            identity, customer_id, page_size=PAGE_SIZE, cursor=cursor
        )
        more = len(found.items) == PAGE_SIZE
        return found.items, found.next_page_token if more else ""
    shown: list[Accesskey] = []
    scanned = 0
    next_token = ""
    while len(shown) < PAGE_SIZE and scanned < FILTER_SCAN_LIMIT:
        batch = await services.accesskeys.list_page(
            identity, customer_id, page_size=FILTER_BATCH, cursor=cursor
        )
        if not batch.items:
            return shown, ""
        for key in batch.items:
            scanned += 1
            if wanted in key.name.casefold():
                shown.append(key)
            next_token = batch.next_page_token
            if len(shown) == PAGE_SIZE:
                return shown, encode_cursor(key.tm_create, key.id)
        if len(batch.items) < FILTER_BATCH:
            return shown, ""
        cursor = decode_cursor(batch.next_page_token)
    return shown, next_token


def _cursor(page_token: str) -> Cursor | None:
    if not page_token:
        return None
    try:
        return decode_cursor(page_token)
    except ValueError:
        raise InvalidArgument(
            "This page link is not valid any more: start again from the first page.",
            reason="INVALID_PAGE_TOKEN",
        ) from None


DONE = {
    "updated": "The key was changed.",
    "disabled": "The key was disabled: requests with it are refused until it is enabled.",
    "enabled": "The key was enabled.",
    "deleted": "The key was deleted.",
}


async def _keys_page(
    request: Request,
    services: Services,
    session: AdminSession,
    *,
    name_filter: str = "",
    page_token: str = "",
    done: str = "",
    created: tuple[present.KeyRow, str, str] | None = None,
    prefix: str = "",
    problem: str = "",
    entered: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The list; ``created`` is a new key, its token (shown this once) and what made it.

    ``entered`` is a refused create form's fields, shown again beside the problem.
    """
    now = services.clock.now()
    search_problem = ""
    if prefix:
        # A leaked token's key, by the display prefix: one index seek, no paging.
        next_token = ""
        try:
            keys = await services.accesskeys.find_by_prefix(
                session.identity, session.identity.customer_id, prefix
            )
        except InvalidArgument as error:
            keys, search_problem, status_code = [], error.message, 400
    else:
        keys, next_token = await _visible_page(services, session, name_filter, _cursor(page_token))
    rows = [present.key_row(key, now) for key in keys]
    return page(
        request,
        "keys.html",
        status_code=status_code,
        rows=rows,
        name_filter=name_filter,
        prefix=prefix,
        search_problem=search_problem,
        page_token=page_token,
        next_token=next_token,
        notice=DONE.get(done, ""),
        created=created,
        problem=problem,
        entered=entered or {},
        expiry_days=present.EXPIRY_DAYS,
        grace_choices=present.GRACE_CHOICES,
        confirmation=present.confirmation,
        max_expire_days=(services.accesskeys.max_expire or MAX_EXPIRE) // 86_400,
        **_context(session, "keys"),
    )


@router.get("/keys")
async def keys(
    request: Request, services: ServicesDep, name: str = "", page_token: str = "", prefix: str = ""
) -> Response:
    async def show(session: AdminSession, _form: dict[str, str]) -> Response:
        if not session.manages_keys:
            raise PermissionDenied(
                "Managing access keys needs the customer admin permission.",
                reason="PERMISSION_DENIED",
            )
        flash = _open_flash(request, services, session)
        response = await _keys_page(
            request,
            services,
            session,
            name_filter=name,
            page_token=page_token,
            prefix=prefix.strip(),
            done=flash.get("done", ""),
            created=await _created(services, session, flash),
        )
        if _cookie(request, FLASH_COOKIE):
            _forget_flash(request, response)
        return response

    return await _guarded(request, services, show)


def _flash(
    request: Request, services: Services, session: AdminSession, payload: dict[str, str]
) -> RedirectResponse:
    """POST/redirect/GET: the list shows what was done once, from a sealed cookie.

    A new token is never stored: it travels to the browser in a short-lived
    cookie encrypted and authenticated for this session (``seal_flash``), which
    the list reads and deletes. A reload of the list finds no cookie, so neither
    the token nor a notice of what was done is shown twice.
    """
    response = RedirectResponse(FLASH_PATH, status_code=303)
    key_bytes: bytes = request.app.state.admin_flash_key
    sealed = seal_flash(key_bytes, session.csrf, payload, services.clock.now())
    response.set_cookie(
        FLASH_COOKIE,
        sealed,
        max_age=FLASH_SECONDS,
        path=FLASH_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


def _with_new_token(
    request: Request,
    services: Services,
    session: AdminSession,
    key: Accesskey,
    token: str,
    how: str,
) -> RedirectResponse:
    return _flash(request, services, session, {"key": str(key.id), "token": token, "how": how})


def _forget_flash(request: Request, response: Response) -> None:
    response.delete_cookie(
        FLASH_COOKIE, path=FLASH_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )


def _open_flash(request: Request, services: Services, session: AdminSession) -> dict[str, str]:
    """What a change just sealed for this session: empty when there is none, or not valid."""
    cookie = _cookie(request, FLASH_COOKIE)
    if not cookie:
        return {}
    key_bytes: bytes = request.app.state.admin_flash_key
    return open_flash(key_bytes, session.csrf, cookie, services.clock.now()) or {}


async def _created(
    services: Services, session: AdminSession, flash: dict[str, str]
) -> tuple[present.KeyRow, str, str] | None:
    """The key a creation or rotation just made, with its token, if the flash holds one."""
    how = flash.get("how", "")
    if how not in ("created", "rotated"):
        return None
    try:
        key = await services.accesskeys.get(session.identity, uuid.UUID(flash.get("key", "")))
    except (ValueError, NotFound):
        return None
    return present.key_row(key, services.clock.now()), flash.get("token", ""), how


@router.post("/keys")
async def create_key(request: Request, services: ServicesDep) -> Response:
    """The same service call as ``POST /v1.0/accesskeys``; a problem is shown on the form."""

    async def create(session: AdminSession, form: dict[str, str]) -> Response:
        async def refused(problem: str) -> Response:
            return await _keys_page(
                request, services, session, problem=problem, entered=form, status_code=400
            )

        expire = present.expire_seconds(form.get("expiry", ""), form.get("custom_days", ""))
        if isinstance(expire, str):
            return await refused(expire)
        rules = present.scope_rules(form.get("access", ""), form.get("scope_rules", ""))
        if isinstance(rules, str) and rules != READ_ONLY:
            return await refused(rules)
        try:
            scopes = parse_scopes(rules)
        except ValueError as error:
            return await refused(f"Access: {error}.")
        try:
            networks = parse_networks(present.network_list(form.get("allowed_networks", "")))
        except ValueError as error:
            return await refused(f"Allowed networks: {error}.")
        try:
            key, token = await services.accesskeys.create(
                session.identity,
                session.identity.customer_id,
                name=form.get("name", ""),
                detail=form.get("detail", ""),
                expire=expire,
                scopes=scopes,
                allowed_networks=networks,
            )
        except InvalidArgument as error:
            return await refused(error.message)
        return _with_new_token(request, services, session, key, token, "created")

    return await _guarded(request, services, create, changes=True)


def _key_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("The access key was not found.", reason="RESOURCE_NOT_FOUND") from None


@router.post("/keys/{key_id}/update")
async def update_key(request: Request, services: ServicesDep, key_id: str) -> Response:
    async def update(session: AdminSession, form: dict[str, str]) -> Response:
        key = await services.accesskeys.update(
            session.identity,
            _key_id(key_id),
            name=form.get("name", ""),
            detail=form.get("detail", ""),
        )
        return _done(request, services, session, "updated", key)

    return await _guarded(request, services, update, changes=True)


def _done(
    request: Request, services: Services, session: AdminSession, what: str, _key: Accesskey
) -> RedirectResponse:
    """After a change, the list again, saying once what was done (a reload repeats neither)."""
    return _flash(request, services, session, {"done": what})


def _grace(raw: str) -> int:
    try:
        return int(raw or "0")
    except ValueError:
        raise InvalidArgument(
            "The grace period must be a whole number of seconds.", reason="INVALID_ARGUMENT"
        ) from None


@router.post("/keys/{key_id}/{action}")
async def change_key(request: Request, services: ServicesDep, key_id: str, action: str) -> Response:
    """Rotate, disable, enable or delete; without ``confirmed=yes``, the question first."""

    async def change(session: AdminSession, form: dict[str, str]) -> Response:
        if action not in present.ACTIONS:
            raise NotFound("There is no such change for a key.", reason="NOT_FOUND")
        kind: present.KeyAction = action
        identity, found = session.identity, _key_id(key_id)
        grace = _grace(form.get("grace", "0"))
        if form.get("confirmed") != "yes":
            key = await services.accesskeys.get(identity, found)
            row = present.key_row(key, services.clock.now())
            return page(
                request,
                "confirm.html",
                row=row,
                action=kind,
                grace=grace,
                question=present.confirmation(kind, row, grace),
                **_context(session, "keys"),
            )
        if kind == "rotate":
            new, token, _old = await services.accesskeys.rotate(identity, found, grace=grace)
            return _with_new_token(request, services, session, new, token, "rotated")
        if kind == "disable":
            return _done(
                request,
                services,
                session,
                "disabled",
                await services.accesskeys.disable(identity, found),
            )
        if kind == "enable":
            return _done(
                request,
                services,
                session,
                "enabled",
                await services.accesskeys.enable(identity, found),
            )
        return _done(
            request, services, session, "deleted", await services.accesskeys.delete(identity, found)
        )

    return await _guarded(request, services, change, changes=True)


# ---------------------------------------------------------------- customer settings


async def _settings_page(
    request: Request,
    services: Services,
    session: AdminSession,
    *,
    saved: bool = False,
    problem: str = "",
    uri: str | None = None,
    method: str | None = None,
    status_code: int = 200,
) -> Response:
    customer_id = session.identity.customer_id
    deliveries = await services.webhooks.deliveries(
        session.identity, customer_id, limit=DELIVERIES_SHOWN, before=None
    )
    now = services.clock.now()
    return page(
        request,
        "settings.html",
        status_code=status_code,
        uri=session.customer.webhook_uri if uri is None else uri,
        method=(session.customer.webhook_method if method is None else method) or "POST",
        deliveries=deliveries,
        absolute=present.absolute,
        relative=lambda moment: present.relative(moment, now),
        saved=saved,
        problem=problem,
        **_context(session, "settings"),
    )


def _require_settings_editor(session: AdminSession) -> None:
    if not session.edits_settings:
        raise PermissionDenied(
            "The customer's settings need the customer admin or manager permission.",
            reason="PERMISSION_DENIED",
        )


@router.get("/settings")
async def settings(request: Request, services: ServicesDep, done: str = "") -> Response:
    async def show(session: AdminSession, _form: dict[str, str]) -> Response:
        _require_settings_editor(session)
        return await _settings_page(request, services, session, saved=done == "saved")

    return await _guarded(request, services, show)


@router.post("/settings")
async def save_settings(request: Request, services: ServicesDep) -> Response:
    async def save(session: AdminSession, form: dict[str, str]) -> Response:
        _require_settings_editor(session)
        customer = session.customer
        # PUT /v1.0/customer replaces every field: the profile is sent back unchanged.
        profile = {
            "name": customer.name,
            "detail": customer.detail,
            "email": customer.email,
            "phone_number": customer.phone_number,
            "address": customer.address,
            "webhook_uri": form.get("webhook_uri", ""),
            "webhook_method": form.get("webhook_method", ""),
        }
        try:
            await services.customers.update_customer(
                session.identity,
                customer.id,
                profile=profile,
                webhook_allowed=services.settings.webhook_networks,
            )
        except InvalidArgument as error:
            return await _settings_page(
                request,
                services,
                session,
                problem=error.message,
                uri=profile["webhook_uri"],
                method=profile["webhook_method"],
                status_code=400,
            )
        return RedirectResponse(f"{COOKIE_PATH}/settings?done=saved", status_code=303)

    return await _guarded(request, services, save, changes=True)
