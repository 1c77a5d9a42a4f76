"""Asking a keyplane server's ``GET /auth/verify``, with a short local cache."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx

REVOCATION_BOUND = 1.0  # seconds: keyplane's promise, which the cache must keep
_IDENTITY = "x-keyplane-"
# The request headers a restricted key's scopes read (keyplane's ``scopes.HEADER_NAMES``,
# which this client library does not import): what the app may run the request as.
# A name spelt with "_" counts, as CGI-style servers read it.
SCOPE_HEADERS = frozenset(
    {"content-type", "x-http-method-override", "x-http-method", "x-method-override"}
)
Headers = Sequence[tuple[str, str]]


def scope_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """The request's headers that a restricted key's scopes read, as ASGI gives them."""
    found = []
    for name, value in headers:
        text = name.decode("latin-1")
        if text.lower().replace("_", "-") in SCOPE_HEADERS:
            found.append((text, value.decode("latin-1")))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who a request is, as keyplane answered (never the credential itself)."""

    customer_id: str
    identity_type: str  # "accesskey" or "agent"
    identity_id: str
    permission: int
    token_prefix: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """An allowed request: the identity, and the request's forms without credentials."""

    identity: VerifiedIdentity
    upstream_query: str | None  # None: the query had no credential, keep it
    upstream_cookie: str | None  # None: there was no Cookie header
    # None: there was no Authorization header; "": it carried a credential, drop it
    upstream_authorization: str | None = None


class KeyplaneRefused(Exception):
    """keyplane refused the request (401, 429, 503): its answer, to send back unchanged."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        super().__init__(f"keyplane refused the request with {status}")
        self.status = status
        self.body = body
        self.headers = headers


_PASSED_BACK = ("content-type", "www-authenticate", "retry-after", "x-request-id")


class KeyplaneVerifier:
    """Verifies requests against a keyplane server, caching allowed answers briefly.

    The cache key is a hash of what carries a credential (``Authorization``,
    ``Cookie``, the query string): no token is kept. Entries live at most
    ``cache_ttl`` seconds, never more than keyplane's one-second revocation
    promise; refusals are never cached.

    ``client``, an ``httpx.AsyncClient`` of the caller's, is asked at its own
    base URL (``base_url`` is then not used).
    """

    def __init__(
        self,
        base_url: str,
        *,
        cache_ttl: float = REVOCATION_BOUND,
        max_entries: int = 10_000,
        timeout: float = 2.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_ttl = min(max(cache_ttl, 0.0), REVOCATION_BOUND)
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()
        self._client = client or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._url = f"{base_url.rstrip('/')}/auth/verify" if client is None else "/auth/verify"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(
        self,
        *,
        path: str,
        query: str,
        authorization: str | None,
        cookie: str | None,
        method: str | None = None,
        headers: Headers = (),
    ) -> Verdict:
        """``method`` and ``path`` are the request's: a restricted key's scopes judge both
        (without ``method``, a restricted key is refused), and ``headers``, the request's
        method override headers and ``Content-Type`` (``scope_headers``): what the app
        may run the request as."""
        key = _cache_key(
            authorization, cookie, query, method or "", path, *(n + ":" + v for n, v in headers)
        )
        now = self._clock()
        found = self._cache.get(key)
        if found is not None and found[0] > now:
            self._cache.move_to_end(key)
            return found[1]
        asked = [("X-Original-URI", f"{path}?{query}" if query else path)]
        if method is not None:
            asked.append(("X-Original-Method", method))
        if authorization is not None:
            asked.append(("Authorization", authorization))
        if cookie is not None:
            asked.append(("Cookie", cookie))
        try:
            response = await self._client.get(self._url, headers=_on_the_wire([*asked, *headers]))
        except httpx.HTTPError:
            raise _unreachable() from None
        # keyplane's values are the request's own bytes, read back as ASGI reads them.
        response.headers.encoding = "latin-1"
        if response.status_code != 200:
            kept = [(n, v) for n, v in response.headers.items() if n.lower() in _PASSED_BACK]
            raise KeyplaneRefused(response.status_code, response.content, kept)
        verdict = _verdict(response.headers, authorization, cookie)
        if self.cache_ttl > 0 and self._max > 0:
            self._cache[key] = (now + self.cache_ttl, verdict)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return verdict


def _on_the_wire(headers: Headers) -> list[tuple[bytes, bytes]]:
    """The values as bytes: ASGI gives header values decoded as latin-1, so encoding
    them back sends what the client sent (a UTF-8 cookie, say); a path a framework
    decoded from UTF-8 goes as UTF-8."""
    return [(name.encode("ascii"), _bytes(value)) for name, value in headers]


def _bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _cache_key(authorization: str | None, cookie: str | None, *request: str) -> str:
    # The method and path are part of the question: a restricted key's answer depends on them.
    material = "\x00".join((authorization or "", cookie or "", *request))
    return hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()


def _verdict(headers: httpx.Headers, authorization: str | None, cookie: str | None) -> Verdict:
    upstream_uri = headers.get("x-keyplane-upstream-uri")
    identity = VerifiedIdentity(
        customer_id=headers[_IDENTITY + "customer-id"],
        identity_type=headers[_IDENTITY + "identity-type"],
        identity_id=headers[_IDENTITY + "identity-id"],
        permission=int(headers[_IDENTITY + "permission"]),
        token_prefix=headers.get(_IDENTITY + "token-prefix"),
        request_id=headers.get(_IDENTITY + "request-id", ""),
    )
    return Verdict(
        identity=identity,
        upstream_query=None if upstream_uri is None else upstream_uri.partition("?")[2],
        upstream_cookie=None if cookie is None else headers.get(_IDENTITY + "upstream-cookie", ""),
        upstream_authorization=(
            None if authorization is None else headers.get(_IDENTITY + "upstream-authorization", "")
        ),
    )


def _unreachable() -> KeyplaneRefused:
    body = (
        b'{"error":{"status":"UNAVAILABLE","reason":"UNAVAILABLE",'
        b'"message":"The authentication service did not answer; retry later.","request_id":""}}'
    )
    return KeyplaneRefused(503, body, [("content-type", "application/json"), ("retry-after", "1")])
