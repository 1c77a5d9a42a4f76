"""The invalidation listener never dies: whatever reaches the channel, it goes on.

Each case shows first that the listener is alive and a cached entry is there
(the positive control), then sends what could break it, then shows that the
cache forgot what it could not vouch for and that the listener still hears.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from keyplane.cache import invalidation as invalidation_module
from keyplane.cache.invalidation import CHANNEL, SILENCE_LIMIT_SECONDS, Invalidation
from keyplane.cache.verification import MISS, VerificationCache
from tests.integration.test_verification_cache import a_key, eventually, invalidating_cache
from tests.logcapture import captured_logging
from tests.servers import RedisServer


@asynccontextmanager
async def publisher(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def assert_still_listening(cache: VerificationCache, redis: aioredis.Redis) -> None:
    """A valid invalidation sent now is applied: the listener is alive and subscribed."""
    assert await eventually(lambda: cache.connected, within=5.0)
    token_hash, key = a_key()
    cache.put_key(token_hash, key, cache.generation)
    assert cache.get_key(token_hash) == key
    await redis.publish(CHANNEL, Invalidation("accesskey", key.id, token_hash).to_json())
    assert await eventually(lambda: cache.get_key(token_hash) is MISS, within=2.0)


MALFORMED: dict[str, Callable[[], bytes]] = {
    "nested-100000-deep": lambda: b"[" * 100_000 + b"]" * 100_000,
    "nested-object-100000-deep": lambda: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "invalid-utf8": lambda: b'{"kind": "agent", "id": "\xff\xfe\xfd"}',
    "ten-megabytes": lambda: json.dumps({"kind": "agent", "pad": "x" * 10_000_000}).encode(),
    "not-json": lambda: b"\x00\x01 hello",
}


@pytest.mark.parametrize("make_message", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_message_clears_the_cache_and_the_listener_goes_on(
    redis_url: str, make_message: Callable[[], bytes]
) -> None:
    async with invalidating_cache(redis_url) as (cache, _), publisher(redis_url) as redis:
        await assert_still_listening(cache, redis)
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        assert cache.get_key(token_hash) == key

        with captured_logging() as logs:
            await redis.publish(CHANNEL, make_message())
            assert await eventually(lambda: cache.get_key(token_hash) is MISS, within=2.0)
        assert "invalidation_message_ignored" in logs.getvalue()

        await assert_still_listening(cache, redis)


async def test_an_unexpected_error_is_logged_counted_and_survived(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with invalidating_cache(redis_url) as (cache, invalidator), publisher(redis_url) as redis:
        await assert_still_listening(cache, redis)
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        real_apply = invalidation_module.apply
        failures = 0

        def apply_failing_once(target: VerificationCache, change: Invalidation) -> None:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise RuntimeError("a bug nobody foresaw")
            real_apply(target, change)

        monkeypatch.setattr(invalidation_module, "apply", apply_failing_once)
        with captured_logging() as logs:
            await redis.publish(CHANNEL, Invalidation("agent", key.id).to_json())
            assert await eventually(lambda: invalidator.listener_failures == 1, within=2.0)
        assert "invalidation_listener_failed" in logs.getvalue()
        assert cache.get_key(token_hash) is MISS  # the cache forgot what it held
        await assert_still_listening(cache, redis)


async def test_a_redis_that_stops_answering_is_noticed(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Connections are still accepted (the process is stopped, not gone): only silence tells."""
    async with invalidating_cache(redis_url) as (cache, _), publisher(redis_url) as redis:
        await assert_still_listening(cache, redis)
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        assert redis_server.process is not None
        pid = redis_server.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            assert await eventually(lambda: not cache.connected, within=5.0)
            noticed_after = time.monotonic() - stopped
            assert cache.get_key(token_hash) is MISS
            assert cache.positive_ttl == 1.0  # the short fallback TTL
        finally:
            os.kill(pid, signal.SIGCONT)
        # The documented bound, with room for one heartbeat and a loaded machine.
        assert noticed_after < SILENCE_LIMIT_SECONDS + 1.0, noticed_after
        await assert_still_listening(cache, redis)


async def test_a_killed_redis_is_noticed_and_the_listener_comes_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with invalidating_cache(redis_url) as (cache, _):
        async with publisher(redis_url) as redis:
            await assert_still_listening(cache, redis)
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        assert redis_server.process is not None
        redis_server.process.kill()
        redis_server.process.wait()
        redis_server.process = None
        try:
            assert await eventually(lambda: not cache.connected, within=5.0)
            assert cache.get_key(token_hash) is MISS
        finally:
            redis_server.start()
        async with publisher(redis_url) as redis:
            await assert_still_listening(cache, redis)


def test_from_json_refuses_a_large_message_before_parsing_it() -> None:
    with pytest.raises(ValueError, match="over"):
        Invalidation.from_json("[" * 2_000)
