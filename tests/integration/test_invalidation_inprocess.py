"""The invalidation listener of one process, against the real Redis, in this process.

Unlike the tests of two replicas, these run the listener in the test's own
event loop, so mutation testing sees them. Each waits on what the cache is told
(``WatchedCache`` wakes the test on every change) or on what Redis counted, with
a generous limit that only keeps a broken listener from hanging the run; the one
test that bounds a duration (``..._quickly``) is left out of mutation runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from keyplane.cache import invalidation as invalidation_module
from keyplane.cache.invalidation import (
    HEARTBEAT_SECONDS,
    SILENCE_LIMIT_SECONDS,
    Invalidation,
    RedisInvalidator,
)
from keyplane.cache.verification import MISS, VerificationCache, VerifiedAgent, VerifiedKey
from keyplane.domain import tokens
from keyplane.services.container import build_services
from tests.conftest import make_settings
from tests.logcapture import captured_logging
from tests.servers import RedisServer

# Spelled out: the channel is a contract between replicas of different versions.
CHANNEL = "keyplane:invalidations"
EXPIRE = datetime(2027, 12, 1, tzinfo=UTC)
PATIENCE = 10.0  # only keeps a broken listener from hanging the run


class WatchedCache(VerificationCache):
    """The verification cache, waking the test whenever the listener changes it."""

    def __init__(self) -> None:
        super().__init__(ttl=60.0, fallback_ttl=1.0, negative_ttl=10.0)
        self.states: list[bool] = []  # every change of ``connected``, in order
        self.went_down_at: float | None = None
        self.reports = 0  # every time the listener tells the cache its state
        self._waiters: set[asyncio.Event] = set()

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def set_connected(self, connected: bool) -> None:
        before = self.connected
        self.reports += 1
        super().set_connected(connected)
        if self.connected != before:
            self.states.append(self.connected)
            if not self.connected and self.went_down_at is None:
                self.went_down_at = time.monotonic()
        self._wake()

    def clear(self) -> None:
        super().clear()
        self._wake()

    def invalidate_key(self, token_hash: str) -> None:
        super().invalidate_key(token_hash)
        self._wake()

    def invalidate_agent(self, agent_id: uuid.UUID) -> None:
        super().invalidate_agent(agent_id)
        self._wake()

    def invalidate_customer(self, customer_id: uuid.UUID) -> None:
        super().invalidate_customer(customer_id)
        self._wake()

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while not check():
            waiter = asyncio.Event()
            self._waiters.add(waiter)
            try:
                remaining = deadline - asyncio.get_running_loop().time()
                await asyncio.wait_for(waiter.wait(), max(remaining, 0.0))
            except TimeoutError:
                raise AssertionError(f"never happened: {what}") from None
            finally:
                self._waiters.discard(waiter)


@asynccontextmanager
async def listening(redis_url: str) -> AsyncIterator[tuple[WatchedCache, RedisInvalidator]]:
    cache = WatchedCache()
    invalidator = RedisInvalidator(cache, redis_url)
    await invalidator.start()
    try:
        await cache.until(lambda: cache.connected, "the listener subscribed")
        yield cache, invalidator
    finally:
        await invalidator.stop()


@asynccontextmanager
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def a_key(customer_id: uuid.UUID | None = None) -> tuple[str, VerifiedKey]:
    token_hash = tokens.hash_token(tokens.generate_token())
    return token_hash, VerifiedKey(uuid.uuid4(), customer_id or uuid.uuid4(), EXPIRE)


def events(logs: str, name: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [entry for entry in found if entry.get("event") == name]


async def server_pings(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def kill(redis_server: RedisServer) -> None:
    assert redis_server.process is not None
    redis_server.process.kill()
    redis_server.process.wait()
    redis_server.process = None


# Messages on the channel -----------------------------------------------------


async def test_each_kind_of_message_evicts_exactly_its_entries(redis_url: str) -> None:
    async with listening(redis_url) as (cache, invalidator), redis_client(redis_url) as redis:
        customer_id = uuid.uuid4()
        key_hash, key = a_key()
        sibling_hash, sibling = a_key(customer_id)
        kept_hash, kept = a_key()
        agent = VerifiedAgent(uuid.uuid4(), uuid.uuid4(), 32)
        kept_agent = VerifiedAgent(uuid.uuid4(), uuid.uuid4(), 64)
        for token_hash, entry in ((key_hash, key), (sibling_hash, sibling), (kept_hash, kept)):
            cache.put_key(token_hash, entry, cache.generation)
        cache.put_agent(agent.id, agent, cache.generation)
        cache.put_agent(kept_agent.id, kept_agent, cache.generation)

        message = json.dumps({"kind": "accesskey", "id": str(key.id), "hash": key_hash})
        await redis.publish(CHANNEL, message)
        await cache.until(lambda: cache.get_key(key_hash) is MISS, "the key evicted")
        assert cache.get_key(kept_hash) == kept

        await redis.publish(CHANNEL, json.dumps({"kind": "agent", "id": str(agent.id)}))
        await cache.until(lambda: cache.get_agent(agent.id) is MISS, "the agent evicted")
        assert cache.get_agent(kept_agent.id) == kept_agent

        await redis.publish(CHANNEL, json.dumps({"kind": "customer", "id": str(customer_id)}))
        await cache.until(lambda: cache.get_key(sibling_hash) is MISS, "the customer evicted")

        assert cache.get_key(kept_hash) == kept
        assert cache.get_agent(kept_agent.id) == kept_agent
        assert cache.states == [True]  # never left connected mode
        assert invalidator.listener_failures == 0


async def test_publish_evicts_here_at_once_and_sends_the_message_on_the_channel(
    redis_url: str,
) -> None:
    async with (
        listening(redis_url) as (cache, invalidator),
        redis_client(redis_url) as redis,
    ):
        watcher = redis.pubsub()
        await watcher.subscribe(CHANNEL)
        assert (await watcher.get_message(timeout=PATIENCE))["type"] == "subscribe"
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)

        await invalidator.publish(Invalidation("accesskey", key.id, token_hash))
        assert cache.get_key(token_hash) is MISS  # before any round trip

        received = await watcher.get_message(ignore_subscribe_messages=True, timeout=PATIENCE)
        await watcher.aclose()
        assert received is not None
        assert received["channel"] == CHANNEL.encode()
        assert json.loads(received["data"]) == {
            "kind": "accesskey",
            "id": str(key.id),
            "hash": token_hash,
        }


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


# What reaches the channel, and the reason logged for it.
MALFORMED: dict[str, tuple[bytes, str]] = {
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, "not an invalidation message: over 1024"),
    "huge": (_json({"kind": "agent", "pad": "x" * 1_000_000}), "not an invalidation message: over"),
    "invalid-utf8": (b'{"kind": "agent", "id": "\xff\xfe"}', "'utf-8' codec can't decode"),
    "not-json": (b"\x00\x01 hello", "Expecting value"),
    "a-list": (b"[]", "not an invalidation message: TypeError"),
    "no-id": (_json({"kind": "agent"}), "not an invalidation message: KeyError"),
    "int-id": (_json({"kind": "agent", "id": 5}), "not an invalidation message: AttributeError"),
    "null-id": (_json({"kind": "agent", "id": None}), "not an invalidation message: TypeError"),
    "bad-id": (_json({"kind": "agent", "id": "nope"}), "badly formed hexadecimal UUID"),
    "unknown-kind": (
        _json({"kind": "comet", "id": str(uuid.uuid4())}),
        "unknown invalidation kind 'comet'",
    ),
    "hash-not-a-string": (
        _json({"kind": "accesskey", "id": str(uuid.uuid4()), "hash": 5}),
        "hash must be a string",
    ),
}


@pytest.mark.parametrize(("message", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_message_clears_the_cache_is_logged_and_the_listener_goes_on(
    redis_url: str, message: bytes, reason: str
) -> None:
    async with listening(redis_url) as (cache, invalidator), redis_client(redis_url) as redis:
        token_hash, key = a_key()
        agent = VerifiedAgent(uuid.uuid4(), uuid.uuid4(), 32)
        cache.put_key(token_hash, key, cache.generation)
        cache.put_agent(agent.id, agent, cache.generation)

        with captured_logging() as logs:
            await redis.publish(CHANNEL, message)
            await cache.until(
                lambda: (
                    len(cache) == 0
                    and bool(events(logs.getvalue(), "invalidation_message_ignored"))
                ),
                "the whole cache cleared and the message logged as ignored",
            )
        [ignored] = events(logs.getvalue(), "invalidation_message_ignored")
        assert ignored["level"] == "warning"
        assert ignored["error"].startswith(reason), ignored
        assert "x" * 100 not in logs.getvalue()  # the message itself is not logged

        # Still subscribed, never reconnected, nothing counted as a failure.
        assert cache.states == [True]
        assert invalidator.listener_failures == 0
        later_hash, later = a_key()
        cache.put_key(later_hash, later, cache.generation)
        await redis.publish(CHANNEL, Invalidation("accesskey", later.id, later_hash).to_json())
        await cache.until(lambda: cache.get_key(later_hash) is MISS, "a later message applied")


async def test_a_message_of_exactly_the_size_limit_is_read(redis_url: str) -> None:
    async with listening(redis_url) as (cache, _), redis_client(redis_url) as redis:
        token_hash, key = a_key()
        other_hash, other = a_key()
        cache.put_key(token_hash, key, cache.generation)
        cache.put_key(other_hash, other, cache.generation)
        message = Invalidation("accesskey", key.id, token_hash).to_json()
        padded = message[:-1] + " " * (invalidation_module.MAX_MESSAGE_BYTES - len(message)) + "}"
        assert len(padded) == 1024

        with captured_logging() as logs:
            await redis.publish(CHANNEL, padded)
            await cache.until(lambda: cache.get_key(token_hash) is MISS, "the key evicted")
        assert cache.get_key(other_hash) == other  # applied, not cleared
        assert events(logs.getvalue(), "invalidation_message_ignored") == []

        with captured_logging() as logs:
            await redis.publish(CHANNEL, padded + " ")
            await cache.until(lambda: len(cache) == 0, "the cache cleared")
        [ignored] = events(logs.getvalue(), "invalidation_message_ignored")
        assert ignored["error"] == "not an invalidation message: over 1024 bytes"


async def test_the_listener_keeps_a_quiet_channel_alive_with_pings(redis_url: str) -> None:
    """Heartbeats answered: no message for several silence limits, and still subscribed."""
    async with listening(redis_url) as (cache, invalidator), redis_client(redis_url) as redis:
        await redis.config_resetstat()
        quiet_for = 3 * SILENCE_LIMIT_SECONDS
        wanted = int(quiet_for / HEARTBEAT_SECONDS)
        deadline = time.monotonic() + PATIENCE
        while await server_pings(redis) < wanted:
            assert time.monotonic() < deadline, "the listener stopped pinging"
            await asyncio.sleep(0.05)
        assert cache.states == [True]
        assert cache.connected
        assert invalidator.listener_failures == 0


async def test_stop_leaves_nothing_subscribed_or_connected(redis_url: str) -> None:
    async with redis_client(redis_url) as redis:
        before = len(await redis.client_list())  # this one, and any an earlier test left
        async with listening(redis_url) as (cache, invalidator):
            await invalidator.publish(Invalidation("agent", uuid.uuid4()))  # opens the publisher
            assert await redis.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 1)]
        assert cache.connected is False  # a stopped listener vouches for nothing
        assert await redis.pubsub_numsub(CHANNEL) == [(CHANNEL.encode(), 0)]
        clients = await redis.client_list()
        assert len(clients) <= before, clients  # the listener's and the publisher's closed


# Failures --------------------------------------------------------------------


async def test_unexpected_errors_are_logged_counted_and_survived(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with listening(redis_url) as (cache, invalidator), redis_client(redis_url) as redis:
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        real_apply = invalidation_module.apply
        failures = [RuntimeError("a bug nobody foresaw"), LookupError("another one")]

        def apply_failing(target: VerificationCache, change: Invalidation) -> None:
            if failures:
                raise failures.pop(0)
            real_apply(target, change)

        monkeypatch.setattr(invalidation_module, "apply", apply_failing)
        with captured_logging() as logs:
            await redis.publish(CHANNEL, Invalidation("agent", uuid.uuid4()).to_json())
            await cache.until(lambda: cache.states == [True, False, True], "back after one")
            assert cache.get_key(token_hash) is MISS  # forgot what it held
            await redis.publish(CHANNEL, Invalidation("agent", uuid.uuid4()).to_json())
            await cache.until(lambda: len(cache.states) == 5, "back after the second")
        assert invalidator.listener_failures == 2
        failed = events(logs.getvalue(), "invalidation_listener_failed")
        assert [(entry["level"], entry["error"]) for entry in failed] == [
            ("error", "RuntimeError"),
            ("error", "LookupError"),
        ]
        assert "nobody foresaw" not in logs.getvalue()
        # An unexpected error is not an outage of Redis.
        assert events(logs.getvalue(), "redis_unavailable") == []

        later_hash, later = a_key()
        cache.put_key(later_hash, later, cache.generation)
        await redis.publish(CHANNEL, Invalidation("accesskey", later.id, later_hash).to_json())
        await cache.until(lambda: cache.get_key(later_hash) is MISS, "a later message applied")


async def test_a_failed_publish_is_logged_once_and_the_change_still_applies_here(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with listening(redis_url) as (cache, invalidator):

        async def refused(channel: str, message: str) -> int:
            raise RedisConnectionError("blip")

        monkeypatch.setattr(invalidator._publisher, "publish", refused)
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        with captured_logging() as logs:
            await invalidator.publish(Invalidation("accesskey", key.id, token_hash))
            await invalidator.publish(Invalidation("agent", uuid.uuid4()))
        assert cache.get_key(token_hash) is MISS
        [down] = events(logs.getvalue(), "redis_unavailable")
        assert down["level"] == "warning"
        assert down["error"] == "ConnectionError"
        assert down["effect"] == "verification cache falls back to its short TTL"
        assert "blip" not in logs.getvalue()


async def test_a_killed_redis_means_fallback_until_it_is_back_then_a_fresh_start(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with listening(redis_url) as (cache, invalidator):
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        assert cache.positive_ttl == 60.0
        with captured_logging() as logs:
            await kill(redis_server)
            try:
                await cache.until(lambda: not cache.connected, "the outage noticed")
                assert cache.get_key(token_hash) is MISS
                assert cache.positive_ttl == 1.0
                # Reconnection fails for as long as Redis is away, and the cache stays
                # in fallback mode: wait for several failed attempts.
                reports = cache.reports
                await cache.until(lambda: cache.reports >= reports + 4, "two more attempts")
                assert cache.states == [True, False]
                cache.put_key(token_hash, key, cache.generation)  # for the fallback TTL
            finally:
                redis_server.start()
            await cache.until(lambda: cache.connected, "subscribed again")
        assert cache.states == [True, False, True]
        assert cache.get_key(token_hash) is MISS  # started afresh
        assert cache.positive_ttl == 60.0
        assert invalidator.listener_failures == 0
        [down] = events(logs.getvalue(), "redis_unavailable")
        assert down["level"] == "warning"
        # The reset connection, or the silence limit when a loaded machine reads it late.
        assert down["error"] in {"ConnectionError", "TimeoutError"}, down
        assert down["effect"] == "verification cache falls back to its short TTL"
        [back] = events(logs.getvalue(), "redis_recovered")
        assert back["level"] == "info"
        assert back["effect"] == "invalidations resumed"

        # The second outage is reported again.
        with captured_logging() as logs:
            await kill(redis_server)
            try:
                await cache.until(lambda: not cache.connected, "the second outage noticed")
            finally:
                redis_server.start()
            await cache.until(lambda: cache.connected, "subscribed again")
        assert len(events(logs.getvalue(), "redis_unavailable")) == 1
        assert len(events(logs.getvalue(), "redis_recovered")) == 1

        async with redis_client(redis_url) as redis:
            later_hash, later = a_key()
            cache.put_key(later_hash, later, cache.generation)
            await redis.publish(CHANNEL, Invalidation("accesskey", later.id, later_hash).to_json())
            await cache.until(lambda: cache.get_key(later_hash) is MISS, "a message applied")


@asynccontextmanager
async def stopped(redis_server: RedisServer) -> AsyncIterator[None]:
    """Redis still accepts connections but answers nothing (SIGSTOP)."""
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_redis_that_never_answers_is_noticed_and_left_in_fallback(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with listening(redis_url) as (cache, invalidator):
        token_hash, key = a_key()
        cache.put_key(token_hash, key, cache.generation)
        with captured_logging() as logs:
            async with stopped(redis_server):
                await cache.until(lambda: not cache.connected, "the silence noticed")
                assert cache.get_key(token_hash) is MISS
                assert cache.positive_ttl == 1.0
                # It keeps trying (each attempt times out) rather than waiting for good.
                reports = cache.reports
                await cache.until(lambda: cache.reports >= reports + 4, "two more attempts")
                assert cache.states == [True, False]
                # A publish gives up after its timeout: the request is not held for good.
                await asyncio.wait_for(
                    invalidator.publish(Invalidation("agent", uuid.uuid4())), PATIENCE
                )
            await cache.until(lambda: cache.connected, "subscribed again")
        [down] = events(logs.getvalue(), "redis_unavailable")
        assert down["error"] == "TimeoutError"
        assert len(events(logs.getvalue(), "redis_recovered")) == 1
        assert invalidator.listener_failures == 0


async def test_a_redis_that_never_answers_is_noticed_quickly(
    redis_server: RedisServer, redis_url: str
) -> None:
    """The documented bound: the silence limit, plus a heartbeat and room for a loaded machine."""
    async with listening(redis_url) as (cache, _):
        async with stopped(redis_server):
            stopped_at = time.monotonic()
            await cache.until(lambda: not cache.connected, "the silence noticed")
        assert cache.went_down_at is not None
        assert cache.went_down_at - stopped_at < SILENCE_LIMIT_SECONDS + 1.0


async def test_readiness_reports_fallback_while_redis_is_away(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    services = build_services(make_settings(tmp_path, redis_url=redis_url))
    await services.migrate()
    await services.start()

    async def ready_checks(expected: str) -> dict[str, str]:
        deadline = time.monotonic() + PATIENCE
        while True:
            checks = await services.readiness()
            if checks.get("invalidations") == expected or time.monotonic() > deadline:
                return checks
            await asyncio.sleep(0.05)

    try:
        assert await ready_checks("ok") == {
            "database": "ok",
            "redis": "ok",
            "invalidations": "ok",
        }
        await kill(redis_server)
        try:
            assert await ready_checks("fallback") == {
                "database": "ok",
                "redis": "unavailable",
                "invalidations": "fallback",
            }
        finally:
            redis_server.start()
        assert (await ready_checks("ok"))["invalidations"] == "ok"
    finally:
        await services.close()


async def test_a_publish_on_an_open_connection_gives_up_quickly_when_redis_stops_answering(
    redis_server: RedisServer, redis_url: str
) -> None:
    """After the invalidator's timeout (1 s), not redis-py's default of 5 s.

    The first publish opens the publisher's connection; a later one on it holds
    the request that deletes a key until it gives up.
    """
    async with listening(redis_url) as (_, invalidator):
        await invalidator.publish(Invalidation("agent", uuid.uuid4()))
        async with stopped(redis_server):
            started = time.monotonic()
            await asyncio.wait_for(
                invalidator.publish(Invalidation("agent", uuid.uuid4())), PATIENCE
            )
            assert time.monotonic() - started < 3.0


async def test_a_listener_that_starts_connected_reports_neither_a_loss_nor_a_recovery(
    redis_url: str,
) -> None:
    with captured_logging() as logs:
        async with listening(redis_url) as (_, invalidator):
            await invalidator.publish(Invalidation("agent", uuid.uuid4()))
    assert events(logs.getvalue(), "redis_recovered") == []
    assert events(logs.getvalue(), "redis_unavailable") == []
