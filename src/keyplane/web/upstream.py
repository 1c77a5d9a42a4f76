"""What a gateway forwards upstream once keyplane allowed a request: no credentials.

keyplane reads ``?accesskey=``/``?token=`` and the ``accesskey``/``token``
cookies by the same parsing rules as the rest of the request (names after
percent-decoding; repeated names; cookies split on ``;``). Removing them in
the gateway with regular expressions would miss what keyplane reads (an
encoded name, a second copy), so ``/auth/verify`` hands the gateway the
cleaned forms and the gateway only copies them.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

CREDENTIAL_NAMES = frozenset({"accesskey", "token"})


def _is_credential_parameter(piece: str) -> bool:
    name = piece.partition("=")[0]
    if "%" in name or "+" in name:
        name = unquote_plus(name)
    return name in CREDENTIAL_NAMES


def query_without_credentials(query: str) -> str | None:
    """The query with every credential parameter removed, or None when it had none.

    The other parameters are kept byte for byte and in order.
    """
    if "accesskey" not in query and "token" not in query and "%" not in query:
        return None  # nothing to remove: the common case costs one scan
    pieces = query.split("&")
    kept = [piece for piece in pieces if not _is_credential_parameter(piece)]
    if len(kept) == len(pieces):
        return None
    return "&".join(piece for piece in kept if piece)


def uri_without_credentials(uri: str) -> str | None:
    """``path?query`` without credential parameters, or None when there were none."""
    path, separator, query = uri.partition("?")
    if not separator:
        return None
    cleaned = query_without_credentials(query)
    if cleaned is None:
        return None
    return f"{path}?{cleaned}" if cleaned else path


def cookie_without_credentials(cookie: str) -> str:
    """The ``Cookie`` header without the credential cookies; the others as they came."""
    kept = []
    for chunk in cookie.split(";"):
        name, has_value, _ = chunk.partition("=")
        if has_value and name.strip() in CREDENTIAL_NAMES:
            continue
        if chunk.strip():
            kept.append(chunk.strip())
    return "; ".join(kept)
