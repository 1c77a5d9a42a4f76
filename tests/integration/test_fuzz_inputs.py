"""Property tests: whatever a client sends, the answer is never a 500, and errors are the envelope.

The credential parser gets arbitrary text; the HTTP API gets arbitrary bytes as
bodies, headers, cookies and query strings, JSON with lone surrogates and NUL,
and values of 1 MB, on both databases. Each property runs in a worker thread
and sends its examples to the app on the test's event loop.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyplane.domain.clock import FrozenClock
from keyplane.domain.tokens import looks_like_accesskey
from keyplane.web.credentials import find_credential
from tests.conftest import replica
from tests.factories import Factory

ENVELOPE_FIELDS = {"status", "reason", "message", "request_id"}
EXAMPLES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),  # make fuzz runs more
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MEGABYTE = 1024 * 1024
KEYS = "/v1.0/accesskeys"

# Text with everything a careless decoder trips on: surrogates, NUL, controls, astral planes.
nasty_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=64
) | st.sampled_from(["\ud800", "\udfff", "\x00", "a\x00b", "\ud83d\ude00", "\u202e", ""])
# Header values as raw bytes (HTTP allows obs-text 0x80-0xFF; httpx sends bytes as given).
header_bytes = st.binary(max_size=200).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)
)


# The credential parser ---------------------------------------------------------


@given(
    cookies=st.dictionaries(st.sampled_from(["token", "accesskey", "other"]), nasty_text),
    query=st.dictionaries(st.sampled_from(["token", "accesskey", "page_size"]), nasty_text),
    authorization=st.none() | nasty_text | nasty_text.map(lambda v: "Bearer " + v),
)
def test_find_credential_never_raises_and_only_returns_what_was_sent(
    cookies: dict[str, str], query: dict[str, str], authorization: str | None
) -> None:
    found = find_credential(cookies, query, authorization)
    if found is None:
        return
    assert found.value
    sent = [*cookies.values(), *query.values(), authorization or ""]
    assert any(found.value in value for value in sent)
    assert found.kind in ("session", "accesskey")
    if found.source == "header":
        assert (found.kind == "accesskey") == looks_like_accesskey(found.value)
    assert repr(found) == (
        f"Credential(kind={found.kind!r}, source={found.source!r}, value=<redacted>)"
    )


# The HTTP API ------------------------------------------------------------------

NO_LIMITS = {
    "ratelimit_auth_failures_burst": 1_000_000,
    "ratelimit_auth_failures_per_minute": 1e6,
    "ratelimit_login_failures_burst": 1_000_000,
    "ratelimit_login_failures_per_minute": 1e6,
}
Api = tuple[httpx.AsyncClient, str]


@pytest.fixture
async def api(tmp_path: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Api]:
    """The app in this process, one customer's access key, and limits out of the way."""
    async with replica(tmp_path, database_url, clock, **NO_LIMITS) as node, node.client() as http:
        factory = Factory(node.services)
        yield http, await factory.identity_token(await factory.customer())


def send(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """From a hypothesis example (a worker thread), one request on the test's event loop."""
    return anyio.from_thread.run(functools.partial(http.request, method, path, **kwargs))


async def check(prop: Callable[[], None]) -> None:
    """Run a hypothesis property off the event loop, so that its examples can use the app."""
    await anyio.to_thread.run_sync(prop)


def assert_no_server_error(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == ENVELOPE_FIELDS, body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nasty_text, children),
    max_leaves=10,
)


def raw_json(value: Any) -> bytes:
    # ensure_ascii escapes lone surrogates as \\ud800, as a client library would send them.
    return json.dumps(value, ensure_ascii=True).encode()


async def test_login_bodies(api: Api) -> None:
    http, _ = api

    @EXAMPLES
    @given(
        body=st.binary(max_size=512)
        | json_values.map(raw_json)
        | st.fixed_dictionaries(
            {"username": nasty_text, "password": nasty_text}, optional={"x": json_values}
        ).map(raw_json)
    )
    def prop(body: bytes) -> None:
        assert_no_server_error(send(http, "POST", "/auth/login", content=body))

    await check(prop)


async def test_accesskey_bodies(api: Api) -> None:
    http, key = api

    @EXAMPLES
    @given(
        body=st.binary(max_size=512)
        | st.fixed_dictionaries(
            {},
            optional={
                "name": nasty_text | json_values,
                "detail": nasty_text | json_values,
                "expire": st.integers() | st.floats() | nasty_text | st.none(),
            },
        ).map(raw_json),
        method=st.sampled_from(["POST", "PUT"]),
    )
    def prop(body: bytes, method: str) -> None:
        path = KEYS if method == "POST" else f"{KEYS}/{uuid.uuid4()}"
        response = send(
            http, method, path, content=body, headers={"Authorization": "Bearer " + key}
        )
        assert_no_server_error(response)

    await check(prop)


async def test_credentials_in_every_place(api: Api) -> None:
    http, _ = api

    @EXAMPLES
    @given(
        authorization=header_bytes,
        cookie=header_bytes,
        query=st.dictionaries(st.sampled_from(["token", "accesskey", "page_size"]), nasty_text),
        path=st.sampled_from(["/v1.0/customer", KEYS, f"{KEYS}/x", f"{KEYS}/{uuid.uuid4()}"]),
    )
    def prop(authorization: bytes, cookie: bytes, query: dict[str, str], path: str) -> None:
        headers = {"Authorization": authorization, "Cookie": cookie}
        encoded = {k: v.encode("utf-8", "surrogatepass") for k, v in query.items()}
        assert_no_server_error(send(http, "GET", path, headers=headers, params=encoded))

    await check(prop)


@pytest.mark.parametrize("field", ["username", "password", "name", "detail"])
@pytest.mark.parametrize("value", ["\ud800", "a\x00b", "x" * MEGABYTE])
async def test_lone_surrogates_nul_and_a_megabyte(api: Api, field: str, value: str) -> None:
    http, key = api
    if field in ("username", "password"):
        body = {"username": "someone", "password": "something", field: value}
        response = await http.post("/auth/login", content=raw_json(body))
    else:
        response = await http.post(
            KEYS,
            content=raw_json({"expire": 86_400, field: value}),
            headers={"Authorization": "Bearer " + key},
        )
    assert_no_server_error(response)
    assert response.status_code in (400, 401, 413), response.text[:300]
