"""KeyplaneVerifier in-process: what it asks keyplane, what it makes of the answer, its cache."""

from __future__ import annotations

import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from keyplane.gateway import KeyplaneAuthMiddleware, KeyplaneRefused, KeyplaneVerifier
from keyplane.gateway._verifier import REVOCATION_BOUND
from keyplane.web.upstream import cookie_without_credentials
from tests.ticker import Ticker

ALLOWED = {
    "x-keyplane-customer-id": "c-1",
    "x-keyplane-identity-type": "accesskey",
    "x-keyplane-identity-id": "k-1",
    "x-keyplane-permission": "32",
    "x-keyplane-token-prefix": "vb_" + "abcdefgh",
    "x-keyplane-request-id": "r-1",
}
BEARER = "Bearer " + "vb_" + "A" * 32


class Keyplane:
    """A stand-in ``/auth/verify``: records each request, answers what it is told."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = ALLOWED if headers is None else headers
        self.body = b""
        self.seen: list[httpx.Request] = []
        self.fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.fail:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(self.status, headers=self.headers, content=self.body)


def verifier_for(
    keyplane: Keyplane, clock: Ticker | None = None, **options: float
) -> KeyplaneVerifier:
    client = httpx.AsyncClient(
        base_url="http://keyplane.test", transport=httpx.MockTransport(keyplane.handle)
    )
    return KeyplaneVerifier(
        "http://keyplane.test",
        client=client,
        clock=clock or Ticker(),
        **options,  # type: ignore[arg-type]
    )


async def test_it_asks_with_the_original_request_and_its_credentials() -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane)
    await verifier.verify(
        path="/v1.0/calls", query="a=1", authorization=BEARER, cookie="theme=dark", method="POST"
    )
    (request,) = keyplane.seen
    assert request.method == "GET"
    assert request.url.path == "/auth/verify"
    assert request.headers["x-original-uri"] == "/v1.0/calls?a=1"
    assert request.headers["x-original-method"] == "POST"
    assert request.headers["authorization"] == BEARER
    assert request.headers["cookie"] == "theme=dark"


async def test_it_sends_only_what_the_request_had() -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane)
    await verifier.verify(path="/v1.0/calls", query="", authorization=None, cookie=None)
    (request,) = keyplane.seen
    assert request.headers["x-original-uri"] == "/v1.0/calls"
    for absent in ("x-original-method", "authorization", "cookie"):
        assert absent not in request.headers


async def test_an_allowed_answer_becomes_the_identity() -> None:
    verifier = verifier_for(Keyplane())
    verdict = await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    identity = verdict.identity
    assert identity.customer_id == "c-1"
    assert identity.identity_type == "accesskey"
    assert identity.identity_id == "k-1"
    assert identity.permission == 32
    assert identity.token_prefix == "vb_" + "abcdefgh"
    assert identity.request_id == "r-1"
    assert verdict.upstream_query is None  # no credential in the query: keep it
    assert verdict.upstream_cookie is None  # no Cookie header


async def test_optional_identity_headers_have_defaults() -> None:
    headers = {
        k: v
        for k, v in ALLOWED.items()
        if k not in ("x-keyplane-token-prefix", "x-keyplane-request-id")
    }
    verifier = verifier_for(Keyplane(headers=headers))
    verdict = await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert verdict.identity.token_prefix is None
    assert verdict.identity.request_id == ""


async def test_the_credential_free_query_and_cookie_are_what_keyplane_says() -> None:
    headers = {
        **ALLOWED,
        "x-keyplane-upstream-uri": "/v1.0/calls?page_size=5",
        "x-keyplane-upstream-cookie": "theme=dark",
    }
    verifier = verifier_for(Keyplane(headers=headers))
    verdict = await verifier.verify(
        path="/v1.0/calls", query="page_size=5&accesskey=x", authorization=None, cookie="x"
    )
    assert verdict.upstream_query == "page_size=5"
    assert verdict.upstream_cookie == "theme=dark"
    bare = verifier_for(Keyplane())
    cookie_only = await bare.verify(path="/", query="", authorization=None, cookie="token=x")
    assert cookie_only.upstream_cookie == ""  # keyplane removed every cookie


async def test_the_authorization_to_pass_on_is_what_keyplane_says() -> None:
    """None without an Authorization header; keyplane's value with one; and when keyplane
    says nothing about it, nothing is passed on (it may hold a credential)."""
    basic = "Basic dXNlcjpwYXNz"
    told = verifier_for(Keyplane(headers={**ALLOWED, "x-keyplane-upstream-authorization": basic}))
    kept = await told.verify(path="/", query="", authorization=basic, cookie="accesskey=x")
    assert kept.upstream_authorization == basic
    silent = verifier_for(Keyplane())
    dropped = await silent.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert dropped.upstream_authorization == ""
    none = await silent.verify(path="/", query="", authorization=None, cookie="accesskey=x")
    assert none.upstream_authorization is None


async def test_a_question_mark_inside_the_query_stays_in_the_query() -> None:
    """Only the first ``?`` ends the path; a later one is part of the query."""
    headers = {**ALLOWED, "x-keyplane-upstream-uri": "/v1.0/calls?next=/a?b=1&c=2"}
    verifier = verifier_for(Keyplane(headers=headers))
    verdict = await verifier.verify(
        path="/v1.0/calls", query="next=/a?b=1&c=2&accesskey=x", authorization=None, cookie=None
    )
    assert verdict.upstream_query == "next=/a?b=1&c=2"


@pytest.mark.parametrize("status", [401, 403, 429, 503])
async def test_a_refusal_is_passed_back_with_its_own_headers_only(status: int) -> None:
    keyplane = Keyplane(
        status,
        headers={
            "content-type": "application/json",
            "www-authenticate": "Bearer",
            "retry-after": "3",
            "x-request-id": "r-9",
            "x-keyplane-customer-id": "c-1",
            "x-other": "no",
        },
    )
    keyplane.body = b'{"error": {}}'
    verifier = verifier_for(keyplane)
    with pytest.raises(KeyplaneRefused) as refused:
        await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert refused.value.status == status
    assert refused.value.body == b'{"error": {}}'
    assert sorted(name.lower() for name, _ in refused.value.headers) == [
        "content-type",
        "retry-after",
        "www-authenticate",
        "x-request-id",
    ]
    assert str(status) in str(refused.value)


async def test_an_unreachable_keyplane_is_a_503_envelope() -> None:
    keyplane = Keyplane()
    keyplane.fail = True
    verifier = verifier_for(keyplane)
    with pytest.raises(KeyplaneRefused) as refused:
        await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert refused.value.status == 503
    error = json.loads(refused.value.body)["error"]
    assert (error["status"], error["reason"]) == ("UNAVAILABLE", "UNAVAILABLE")
    assert error["message"] == "The authentication service did not answer; retry later."
    assert error["request_id"] == ""
    assert set(error) == {"status", "reason", "message", "request_id"}
    assert dict(refused.value.headers) == {"content-type": "application/json", "retry-after": "1"}


async def test_an_allowed_answer_is_cached_until_the_ttl_ends() -> None:
    keyplane, clock = Keyplane(), Ticker()
    verifier = verifier_for(keyplane, clock, cache_ttl=0.5)
    ask = {"path": "/", "query": "", "authorization": BEARER, "cookie": None}
    first = await verifier.verify(**ask)  # type: ignore[arg-type]
    clock.now += 0.499
    assert await verifier.verify(**ask) is first  # type: ignore[arg-type]
    assert len(keyplane.seen) == 1
    clock.now += 0.001  # exactly the end of its life: asked again
    await verifier.verify(**ask)  # type: ignore[arg-type]
    assert len(keyplane.seen) == 2


async def test_refusals_are_never_cached() -> None:
    keyplane = Keyplane(401, headers={})
    verifier = verifier_for(keyplane)
    for _ in range(2):
        with pytest.raises(KeyplaneRefused):
            await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert len(keyplane.seen) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"path": "/other"},
        {"query": "b=2"},
        {"authorization": "Bearer " + "vb_" + "B" * 32},
        {"cookie": "token=x"},
        {"method": "DELETE"},
    ],
    ids=["path", "query", "authorization", "cookie", "method"],
)
async def test_each_part_of_the_question_has_its_own_answer(change: dict[str, str]) -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane)
    ask: dict[str, str | None] = {
        "path": "/",
        "query": "a=1",
        "authorization": BEARER,
        "cookie": None,
        "method": "GET",
    }
    await verifier.verify(**ask)  # type: ignore[arg-type]
    await verifier.verify(**{**ask, **change})  # type: ignore[arg-type]
    assert len(keyplane.seen) == 2


class CookieKeyplane(Keyplane):
    """Answers, as keyplane does, with the request's cookie header minus credentials
    (read and written as latin-1, as keyplane's ASGI server does)."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        headers = [(name.encode(), value.encode()) for name, value in ALLOWED.items()]
        for name, value in request.headers.raw:
            if name.lower() == b"cookie":
                kept = cookie_without_credentials(value.decode("latin-1"))
                headers.append((b"x-keyplane-upstream-cookie", kept.encode("latin-1")))
        return httpx.Response(200, headers=headers)


@pytest.mark.parametrize("cookie", ["theme=dark", "XXXX"], ids=["pair", "bare-name"])
@pytest.mark.parametrize("cookie_first", [False, True], ids=["absent-first", "present-first"])
async def test_no_cookie_and_a_cookie_without_credentials_are_different_questions(
    cookie: str, cookie_first: bool
) -> None:
    """Each gets its own cookie back: none for the request that sent none."""
    keyplane = CookieKeyplane()
    verifier = verifier_for(keyplane)
    asks = [cookie, None] if cookie_first else [None, cookie]
    for sent in asks:
        verdict = await verifier.verify(path="/", query="", authorization=BEARER, cookie=sent)
        assert verdict.upstream_cookie == sent
    assert len(keyplane.seen) == 2


# A UTF-8 cookie as an ASGI server hands it over: its bytes decoded as latin-1.
UTF8_COOKIE = "theme=" + "café ☕".encode().decode("latin-1")


async def test_a_utf8_cookie_goes_to_keyplane_and_comes_back_byte_for_byte() -> None:
    keyplane = CookieKeyplane()
    verifier = verifier_for(keyplane)
    verdict = await verifier.verify(
        path="/", query="", authorization=BEARER, cookie=UTF8_COOKIE + "; token=x"
    )
    (request,) = keyplane.seen
    assert request.headers.raw[-1] == (b"Cookie", ("theme=café ☕; token=x").encode())
    assert verdict.upstream_cookie == UTF8_COOKIE


async def test_an_app_behind_the_middleware_gets_a_utf8_cookie_unchanged() -> None:
    seen: list[bytes | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope["headers"]).get(b"cookie"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protected = KeyplaneAuthMiddleware(app, verifier_for(CookieKeyplane()))
    transport = httpx.ASGITransport(app=protected)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        sent = {"authorization": BEARER, "cookie": UTF8_COOKIE.encode("latin-1")}
        response = await client.get("/v1.0/calls", headers=sent)
    assert response.status_code == 204
    assert seen == [("theme=café ☕").encode()]


async def test_a_path_decoded_from_utf8_is_sent_as_utf8() -> None:
    """What a framework's decoded path (``request.url.path``) may hold."""
    keyplane = Keyplane()
    await verifier_for(keyplane).verify(
        path="/v1.0/日本", query="", authorization=BEARER, cookie=None
    )
    (request,) = keyplane.seen
    assert (b"X-Original-URI", "/v1.0/日本".encode()) in request.headers.raw


@pytest.mark.parametrize(
    ("asked", "kept"),
    [(5.0, REVOCATION_BOUND), (0.25, 0.25), (-1.0, 0.0)],
    ids=["long", "short", "negative"],
)
def test_the_ttl_never_exceeds_the_revocation_bound(asked: float, kept: float) -> None:
    assert REVOCATION_BOUND == 1.0
    assert verifier_for(Keyplane(), cache_ttl=asked).cache_ttl == kept


@pytest.mark.parametrize(
    "options",
    [{"cache_ttl": 0.0}, {"max_entries": 0}, {"max_entries": -1}],
    ids=["ttl", "entries", "negative-entries"],
)
async def test_no_cache_when_turned_off(options: dict[str, float]) -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane, **options)
    for _ in range(2):
        await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert len(keyplane.seen) == 2


async def test_the_least_recently_used_entry_goes_first() -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane, max_entries=2)

    async def ask(path: str) -> None:
        await verifier.verify(path=path, query="", authorization=BEARER, cookie=None)

    await ask("/a")
    await ask("/b")
    await ask("/a")  # a cache hit: /a is now the most recently used
    assert len(keyplane.seen) == 2
    await ask("/c")  # evicts /b
    await ask("/a")
    assert len(keyplane.seen) == 3
    await ask("/b")
    assert len(keyplane.seen) == 4


async def test_its_own_client_asks_the_base_url() -> None:
    verifier = KeyplaneVerifier("http://127.0.0.1:9/", timeout=0.5)
    default = KeyplaneVerifier("http://127.0.0.1:9")
    try:
        assert verifier._url == "http://127.0.0.1:9/auth/verify"
        assert default._url == "http://127.0.0.1:9/auth/verify"
        below = KeyplaneVerifier("http://127.0.0.1:9/X/")
        assert below._url == "http://127.0.0.1:9/X/auth/verify"
        await below.aclose()
        assert verifier._client.timeout == httpx.Timeout(0.5)
        assert default._client.timeout == httpx.Timeout(2.0)
        assert default._max == 10_000
        assert default.cache_ttl == REVOCATION_BOUND
    finally:
        await verifier.aclose()
        await default.aclose()
    assert verifier._client.is_closed


async def test_a_client_given_is_asked_at_its_own_base_url() -> None:
    keyplane = Keyplane()
    client = httpx.AsyncClient(
        base_url="http://keyplane.test/auth-service",
        transport=httpx.MockTransport(keyplane.handle),
    )
    verifier = KeyplaneVerifier("http://elsewhere.test", client=client, clock=Ticker())
    await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    (request,) = keyplane.seen
    assert str(request.url) == "http://keyplane.test/auth-service/auth/verify"


async def test_a_cache_of_one_entry_keeps_one() -> None:
    keyplane = Keyplane()
    verifier = verifier_for(keyplane, max_entries=1)
    for _ in range(2):
        await verifier.verify(path="/", query="", authorization=BEARER, cookie=None)
    assert len(keyplane.seen) == 1
