"""The admin page's session cookie and its CSRF tokens.

The session cookie carries the session JWT that ``POST /auth/login`` issues,
under its own name and path (``keyplane_admin``, ``Path=/admin``): the API
never reads it as a credential, so a browser logged in to the page holds no
ambient credential for the API.

Every form of a session carries a CSRF token: an HMAC of the session under a
key derived from the server's secret, so every replica computes the same token
and nothing is stored. An attacker cannot compute it without the session,
which only the ``HttpOnly`` cookie holds.

The login form comes before any session. Its cookie holds a random nonce, and
its field an expiry and an HMAC of the nonce and that expiry under another key
derived from the server's secret: a cookie planted by a sibling site (which can
set cookies for a parent domain) with a field of its own making is refused,
since the field cannot be made without the key. A pair the server issued to
the attacker is genuine, though, so the login form is also refused when the
browser says it was sent from another origin (``Sec-Fetch-Site``: a sibling
subdomain is ``same-site``, not ``same-origin``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SESSION_COOKIE = "keyplane_admin"
LOGIN_COOKIE = "keyplane_admin_login"
COOKIE_PATH = "/admin"
LOGIN_FORM_SECONDS = 3_600
CSRF_FIELD = "csrf"
# What a browser that sends Fetch Metadata says of a form posted from this page.
SAME_ORIGIN_FETCHES = frozenset({"same-origin", "none"})
_LOGIN_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


def csrf_key(server_secret: bytes) -> bytes:
    """A key for CSRF tokens only, derived from the server's secret."""
    return hmac.new(server_secret, b"keyplane-admin-csrf", hashlib.sha256).digest()


def login_key(server_secret: bytes) -> bytes:
    """A key for the login form's tokens only, derived from the server's secret."""
    return hmac.new(server_secret, b"keyplane-admin-login-form", hashlib.sha256).digest()


def csrf_token(key: bytes, session: str) -> str:
    """The token every form of this session carries."""
    return hmac.new(key, session.encode(), hashlib.sha256).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass(frozen=True, slots=True)
class LoginForm:
    """A login form's pair: ``nonce`` goes in its cookie, ``token`` in its hidden field."""

    nonce: str
    token: str


def _login_mac(key: bytes, nonce: str, expires: int) -> str:
    return hmac.new(key, f"{nonce}|{expires}".encode(), hashlib.sha256).hexdigest()


def new_login_form(key: bytes, now: datetime) -> LoginForm:
    """A fresh nonce, and a token for it that is good for ``LOGIN_FORM_SECONDS``."""
    nonce = secrets.token_urlsafe(32)
    expires = int(now.timestamp()) + LOGIN_FORM_SECONDS
    return LoginForm(nonce, f"{expires}.{_login_mac(key, nonce, expires)}")


def login_form_valid(key: bytes, nonce: str | None, token: str | None, now: datetime) -> bool:
    """Whether ``token`` was made with ``key`` for ``nonce``, and has not expired."""
    found = _LOGIN_TOKEN.fullmatch(token or "")
    if not nonce or found is None:
        return False
    expires, mac = int(found.group(1)), found.group(2)
    expected = _login_mac(key, nonce, expires)
    return hmac.compare_digest(expected.encode(), mac.encode()) and now.timestamp() < expires


def from_another_origin(fetch_site: str | None) -> bool:
    """The browser says the form was sent from another origin (``Sec-Fetch-Site``).

    Browsers without Fetch Metadata send nothing, and neither do other clients:
    absent, the tokens alone decide.
    """
    return fetch_site is not None and fetch_site.strip().lower() not in SAME_ORIGIN_FETCHES


# ---------------------------------------------------------------- the new token's flash

FLASH_COOKIE = "keyplane_admin_token"
FLASH_PATH = "/admin/keys"
FLASH_SECONDS = 60
_NONCE_BYTES = 12  # AES-GCM's


def flash_key(server_secret: bytes) -> bytes:
    """A key for the new token's flash cookie only, derived from the server's secret."""
    return hmac.new(server_secret, b"keyplane-admin-token-flash", hashlib.sha256).digest()


def seal_flash(key: bytes, session: str, payload: dict[str, str], now: datetime) -> str:
    """``payload`` encrypted and authenticated (AES-256-GCM) for the session it belongs to.

    The session is the associated data: the cookie reads as noise, cannot be
    changed, and opens only for the same session, until ``FLASH_SECONDS`` have
    passed.
    """
    body = json.dumps({**payload, "exp": int(now.timestamp()) + FLASH_SECONDS}).encode()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, body, session.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_flash(key: bytes, session: str, cookie: str, now: datetime) -> dict[str, str] | None:
    """The payload of a cookie ``seal_flash`` made for this session, if still fresh."""
    try:
        raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        body = json.loads(
            AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], session.encode())
        )
    except (ValueError, binascii.Error, InvalidTag):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("exp"), int):
        return None
    if now.timestamp() >= body["exp"]:
        return None
    return {name: value for name, value in body.items() if isinstance(value, str)}
