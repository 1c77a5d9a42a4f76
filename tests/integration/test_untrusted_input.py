"""Request input reaches no super-linear parser, and logged request data cannot drive a terminal."""

from __future__ import annotations

import http.cookies
import re
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.adversarial import KIB, repeat_to, worst_requests
from tests.integration.conftest import KEYS, Tenant, assert_error, cookie
from tests.logcapture import captured_logging

# The super-linear parsing and redaction these tests guard against took
# seconds to minutes per request. A hostile request is compared with a benign
# one of the same size sent just before and just after it (so both meet the
# same load): it may take 20 times as long, and at least FLOOR seconds, before
# it counts as a regression. Load alone slows both alike and cannot fail this.
FACTOR = 20
FLOOR = 2.0


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


async def assert_no_slower_than_benign(
    client: httpx.AsyncClient,
    hostile: Callable[[], Awaitable[httpx.Response]],
    benign: Callable[[], Awaitable[httpx.Response]],
) -> httpx.Response:
    """Runs ``hostile`` between two runs of ``benign``; returns the hostile response."""
    _, before = await timed(benign())
    response, elapsed = await timed(hostile())
    _, after = await timed(benign())
    bound = max(FACTOR * max(before, after), FLOOR)
    assert elapsed < bound, f"{elapsed:.2f} s against {before:.3f} s and {after:.3f} s benign"
    return response


def same_size_benign(target: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The same request with its long parts replaced by plain letters of the same length."""
    path, _, query = target.partition("?")
    if len(path) > KIB:
        path = "/v1.0/accesskeys/" + "a" * (len(path) - len("/v1.0/accesskeys/"))
    if query:
        query = "x=" + "a" * (len(query) - 2)
    plain = dict(headers)
    if "Cookie" in plain:
        plain["Cookie"] = "a=" + "b" * (len(plain["Cookie"]) - 2)
    for name in ("X-Original-URI", "X-Forwarded-Uri"):
        if name in plain:
            plain[name] = "/calls?x=" + "a" * (len(plain[name]) - 9)
    return (f"{path}?{query}" if query else path), plain


@pytest.mark.parametrize("target", [KEYS, "/auth/verify"])
async def test_the_raw_cookie_header_never_reaches_python_unquoting(
    client: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    seen: list[str] = []
    unquote = http.cookies._unquote  # type: ignore[attr-defined]

    def recording(value: str) -> str:
        seen.append(value)
        result: str = unquote(value)
        return result

    monkeypatch.setattr(http.cookies, "_unquote", recording)
    hostile = 'a="' + repeat_to("\\x", 128 * KIB) + '"'
    # The work is counted below (what reaches unquoting); the time is a far guard.
    response = await assert_no_slower_than_benign(
        client,
        lambda: client.get(target, headers={"Cookie": hostile}),
        lambda: client.get(target, headers={"Cookie": "a=" + "b" * (len(hostile) - 2)}),
    )
    assert_error(response, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")
    malformed = await client.get(target, headers={"Cookie": 'token="' + repeat_to("\\x", KIB)})
    assert_error(malformed, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    around = f'{hostile}; accesskey="{tenant.key}"; x=\\x\\x'
    assert (await client.get(target, headers={"Cookie": around})).status_code == 200
    assert all("\\" not in value and len(value) < 2 * KIB for value in seen), seen[:3]


async def test_a_malformed_cookie_keeps_its_place_in_the_precedence(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # The token cookie comes first; a bad one is refused, not skipped.
    response = await client.get(
        f"{KEYS}?accesskey={tenant.key}", headers=cookie(token="bad\\value")
    )
    assert_error(response, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
    assert (await client.get(KEYS, headers=cookie(accesskey=tenant.key))).status_code == 200


async def test_the_worst_requests_are_answered_and_logged_quickly(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for fmt in ("json", "console"):
        with captured_logging(fmt) as stream:
            for target, headers in worst_requests():
                plain_target, plain_headers = same_size_benign(target, headers)
                response = await assert_no_slower_than_benign(
                    client,
                    lambda t=target, h=headers: client.get(t, headers=h),
                    lambda t=plain_target, h=plain_headers: client.get(t, headers=h),
                )
                assert response.status_code in (200, 401, 404), target[:40]
        assert len(stream.getvalue()) < 200 * KIB


async def test_long_page_tokens_and_deep_json_are_refused_quickly(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    json_headers = {**tenant.auth, "Content-Type": "application/json"}
    response = await assert_no_slower_than_benign(
        client,
        lambda: client.get(f"{KEYS}?page_token={'A' * 60 * KIB}", headers=tenant.auth),
        lambda: client.get(f"{KEYS}?x={'A' * 60 * KIB}", headers=tenant.auth),
    )
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_PAGE_TOKEN")
    deep = await assert_no_slower_than_benign(
        client,
        lambda: client.post(KEYS, content=b"[" * 60 * KIB, headers=json_headers),
        lambda: client.post(
            KEYS, content=b'"' + b"a" * (60 * KIB - 2) + b'"', headers=json_headers
        ),
    )
    assert_error(deep, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY")


async def test_the_console_log_shows_request_data_escaped(client: httpx.AsyncClient) -> None:
    forged = "/x%1b%5b1A%1b%5b2K%1b%5b1Gfake:%C2%A0admin%C2%A0login%C2%A0ok%0d%0anext"
    with captured_logging("console") as stream:
        await client.get(forged + "?q=%1b%5b2J")
        await client.get("/y%1b%5d0;title%07%c2%9b1A")
    output = stream.getvalue()
    assert "\x1b" not in output
    assert "\x9b" not in output
    assert "\\x1b[1A\\x1b[2K\\x1b[1Gfake:" in output
    assert "\\x1b]0;title\\x07\\x9b1A" in output
    assert "\\r\\nnext" in output
    lines = output.splitlines()
    assert sum("[keyplane.access]" in line for line in lines) == 2
    # Every line is a log line of its own (a timestamp first): none was forged.
    assert all(re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T", line) for line in lines), lines
