"""Finding the credential on a request, by the contract's precedence rules.

Session token sources come first (cookie ``token``, query ``?token=``,
``Authorization: Bearer <jwt>``), then access key sources (cookie
``accesskey``, query ``?accesskey=``, ``Authorization: Bearer vb_…``). The
first one present is the request's credential; an empty value is absent.

Cookies are read one way for the API and for ``/auth/verify``: every
``Cookie`` header of the request, joined with ``"; "`` (:func:`cookie_header`,
as HTTP/2 joins cookie crumbs), then :func:`parse_cookies`, keyplane's own
parser: one split on ``;`` and one partition per pair, so linear in the
header's length whatever it holds. Python's ``http.cookies`` unquoting, which
Starlette's parser calls, is quadratic on some input in Python releases before
3.11.10 (CVE-2024-7592), and no request reaches it with the client's header
(see ``keyplane.web.middleware``).

A cookie is sent by the browser whichever site made the request, so a
credential found in a cookie does not count for a write that another site
made (:func:`is_cross_site_write`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from keyplane.domain.tokens import looks_like_accesskey
from keyplane.services.auth import Credential

CREDENTIAL_COOKIES = frozenset({"accesskey", "token"})
# The /admin page's session, login-form and new-token cookies (``keyplane.web.admin``):
# kept on the request like the credential cookies, never read as API credentials.
ADMIN_COOKIES = frozenset({"keyplane_admin", "keyplane_admin_login", "keyplane_admin_token"})
KEPT_COOKIES = CREDENTIAL_COOKIES | ADMIN_COOKIES
# What a cookie carrying an access key or a JWT can hold; anything else is
# passed on as this placeholder, which is present (so it takes its place in
# the precedence) and refused like any malformed credential.
_CREDENTIAL_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=\-]*")
MALFORMED_COOKIE = "malformed"


def join_cookie_headers(values: Sequence[bytes]) -> str | None:
    """The values of a request's ``Cookie`` headers as one header; None when there is none."""
    if not values:
        return None
    return b"; ".join(values).decode("latin-1")


def cookie_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Every ``Cookie`` header among ASGI ``headers``, joined (:func:`join_cookie_headers`)."""
    return join_cookie_headers([value for name, value in headers if name == b"cookie"])


def parse_cookies(header: str | None, names: Iterable[str] = CREDENTIAL_COOKIES) -> dict[str, str]:
    """The cookies named ``names`` in a ``Cookie`` header; the last of a name wins.

    Surrounding double quotes are removed; nothing else is unescaped, since
    no credential contains a backslash.
    """
    wanted = frozenset(names)
    found: dict[str, str] = {}
    for pair in (header or "").split(";"):
        name, equals, value = pair.partition("=")
        name = name.strip()
        if equals and name in wanted:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found[name] = value
    return found


def canonical_cookie_header(header: str) -> str:
    """Only the credential and admin cookies, each value plain or :data:`MALFORMED_COOKIE`."""
    return "; ".join(
        f"{name}={value if _CREDENTIAL_CHARACTERS.fullmatch(value) else MALFORMED_COOKIE}"
        for name, value in parse_cookies(header, KEPT_COOKIES).items()
    )


def bearer_value(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def find_credential(
    cookies: Mapping[str, str], query: Mapping[str, str], authorization: str | None
) -> Credential | None:
    bearer = bearer_value(authorization)
    bearer_session = bearer if bearer and not looks_like_accesskey(bearer) else None
    bearer_accesskey = bearer if bearer and looks_like_accesskey(bearer) else None
    candidates = (
        ("session", cookies.get("token"), "cookie"),
        ("session", query.get("token"), "query"),
        ("session", bearer_session, "header"),
        ("accesskey", cookies.get("accesskey"), "cookie"),
        ("accesskey", query.get("accesskey"), "query"),
        ("accesskey", bearer_accesskey, "header"),
    )
    for kind, value, source in candidates:
        if value:
            return Credential(kind, value, source)  # type: ignore[arg-type]
    return None


# Methods a browser may send from any site without asking (no CORS preflight
# for the simple ones), and that change nothing here.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})  # "none": typed, bookmarked
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, scheme: str, host: str | None) -> bool:
    """Whether ``Origin`` names this request's own scheme, host and port."""
    if not host:
        return False
    try:
        theirs = urlsplit(origin.strip())
        ours = urlsplit(f"//{host.strip()}")
        their_port = theirs.port or _DEFAULT_PORTS.get(theirs.scheme)
        our_port = ours.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range, a malformed IPv6 address
        return False
    return (
        theirs.scheme == scheme
        and theirs.hostname is not None
        and theirs.hostname == ours.hostname
        and their_port == our_port
    )


def is_cross_site_write(
    method: str, *, scheme: str, host: str | None, origin: str | None, fetch_site: str | None
) -> bool:
    """Whether a browser sent this state-changing request on behalf of another origin.

    ``Sec-Fetch-Site``, which every current browser sends, decides when present:
    only ``same-origin`` and ``none`` pass (``same-site`` does not: a sibling
    subdomain is another origin, and ``SameSite`` cookies do not keep its
    requests out). Without it, ``Origin`` must name this request's own scheme,
    host and port (``null`` never does). A request with neither header is not
    a browser's cross-site request (browsers send ``Origin`` with every POST,
    PUT, PATCH and DELETE from another origin), and passes.
    """
    if method.upper() in SAFE_METHODS:
        return False
    if fetch_site is not None:
        return fetch_site.strip().lower() not in _SAME_ORIGIN_FETCHES
    if origin is not None:
        return not _same_origin(origin, scheme, host)
    return False
