"""The admin page's session cookie and its CSRF tokens.

The session cookie carries the session JWT that ``POST /auth/login`` issues,
under its own name and path (``keyplane_admin``, ``Path=/admin``): the API
never reads it as a credential, so a browser logged in to the page holds no
ambient credential for the API.

Every form carries a CSRF token: an HMAC of the session under a key derived
from the server's secret, so every replica computes the same token and nothing
is stored. The login form, before there is a session, uses a random value kept
in a short-lived cookie of its own (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_COOKIE = "keyplane_admin"
LOGIN_COOKIE = "keyplane_admin_login"
COOKIE_PATH = "/admin"
LOGIN_FORM_SECONDS = 3_600
CSRF_FIELD = "csrf"


def csrf_key(server_secret: bytes) -> bytes:
    """A key for CSRF tokens only, derived from the server's secret."""
    return hmac.new(server_secret, b"keyplane-admin-csrf", hashlib.sha256).digest()


def csrf_token(key: bytes, session: str) -> str:
    """The token every form of this session carries."""
    return hmac.new(key, session.encode(), hashlib.sha256).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def login_form_token() -> str:
    return secrets.token_urlsafe(32)
