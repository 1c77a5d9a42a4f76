"""Finding the credential on a request, by the contract's precedence rules.

Session token sources come first (cookie ``token``, query ``?token=``,
``Authorization: Bearer <jwt>``), then access key sources (cookie
``accesskey``, query ``?accesskey=``, ``Authorization: Bearer vb_…``). The
first one present is the request's credential; an empty value is absent.
"""

from __future__ import annotations

from collections.abc import Mapping

from keyplane.domain.tokens import looks_like_accesskey
from keyplane.services.auth import Credential


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
