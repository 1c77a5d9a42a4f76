"""The invalidation listener against a scripted Redis, on a virtual clock.

``ScriptedRedis`` stands in for the Redis client: each reply arrives a set
latency after its command, and none that would arrive after a set moment (the
moment Redis falls silent). Waiting for a message moves the listener's clock
instead of passing real time, so the times below are exact, however busy the
machine. The listener is documented to ping every quarter second and to give
up after 0.75 s without any answer (``docs/architecture.md``), and it stops
when its process does, whatever it is doing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from keyplane.cache import invalidation as invalidation_module
from keyplane.cache.invalidation import (
    HEARTBEAT_SECONDS,
    SILENCE_LIMIT_SECONDS,
    RedisInvalidator,
)
from keyplane.cache.verification import VerificationCache
from tests.logcapture import captured_logging
from tests.ticker import Ticker, tick

PATIENCE = 10.0  # real seconds; only keeps a broken listener from hanging the run
START = 1_000.0  # virtual seconds
SILENT_AFTER = 3.0  # virtual seconds after the start, Redis stops answering


class ScriptedRedis:
    """The client, its pub/sub connection and the server's replies, on ``clock``."""

    def __init__(self, clock: Ticker, *, latency: float, silent_from: float) -> None:
        self.clock = clock
        self.latency = latency
        self.silent_from = silent_from
        self.subscriptions = 0
        self.pings: list[float] = []
        self.last_answer: float | None = None
        self._replies: list[tuple[float, dict[str, Any]]] = []
        self.slow_closes = 0  # closes that wait until cancelled, as one can on a real network
        # Once Redis has answered everything, the listener's process is paused
        # this long after its next empty wait (a busy machine), then runs on.
        self.pause_when_answered = 0.0
        self._pinged = asyncio.Event()
        self.closing = asyncio.Event()

    def _reply(self, message: dict[str, Any]) -> None:
        due = self.clock.now + self.latency
        if due < self.silent_from:
            self._replies.append((due, message))

    # redis.asyncio.Redis, as the listener uses it
    def from_url(self, url: str, **options: object) -> ScriptedRedis:
        return self

    def pubsub(self) -> ScriptedRedis:
        return self

    async def aclose(self) -> None:
        if self.slow_closes:
            self.slow_closes -= 1
            self.closing.set()
            await asyncio.Event().wait()

    # redis.asyncio.client.PubSub
    async def subscribe(self, channel: str) -> None:
        self.subscriptions += 1
        self._reply({"type": "subscribe", "channel": channel.encode(), "data": 1})

    async def ping(self) -> None:
        self.pings.append(self.clock.now)
        self._pinged.set()
        self._reply({"type": "pong", "channel": None, "data": b""})

    async def pinged_after(self, moment: float, times: int) -> None:
        """Returns once ``times`` pings have gone out after the virtual ``moment``."""
        while len([at for at in self.pings if at > moment]) < times:
            self._pinged.clear()
            await asyncio.wait_for(self._pinged.wait(), PATIENCE)

    # redis-py's signature, hence a ``timeout`` parameter.
    async def get_message(self, *, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109
        await asyncio.sleep(0)  # a turn of the loop, as a read gives
        if self._replies and self._replies[0][0] <= self.clock.now + timeout:
            due, message = self._replies.pop(0)
            self.clock.now = max(self.clock.now, due)
            self.last_answer = self.clock.now
            return message
        self.clock.now += timeout
        if self.pause_when_answered and not self._replies:
            self.clock.now += self.pause_when_answered
            self.pause_when_answered = 0.0
        return None


class WatchedCache(VerificationCache):
    """Notes the virtual moment of every change of ``connected``, and wakes the test."""

    def __init__(self, clock: Ticker) -> None:
        super().__init__()
        self.clock = clock
        self.changes: list[tuple[bool, float]] = []
        self._changed = asyncio.Event()

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.changes.append((connected, self.clock.now))
        super().set_connected(connected)
        self._changed.set()

    async def until(self, check: Callable[[], bool]) -> None:
        while not check():
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), PATIENCE)


@asynccontextmanager
async def listener(
    monkeypatch: pytest.MonkeyPatch, latency: float, silent_after: float = SILENT_AFTER
) -> AsyncIterator[tuple[ScriptedRedis, WatchedCache, RedisInvalidator]]:
    clock = tick(monkeypatch, invalidation_module, now=START)
    redis = ScriptedRedis(clock, latency=latency, silent_from=START + silent_after)
    monkeypatch.setattr(invalidation_module, "aioredis", SimpleNamespace(Redis=redis))
    cache = WatchedCache(clock)
    invalidator = RedisInvalidator(cache, "redis://scripted")
    await invalidator.start()
    try:
        yield redis, cache, invalidator
    finally:
        await invalidator.stop()


def events(logs: str, name: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [entry for entry in found if entry.get("event") == name]


@pytest.mark.parametrize("latency", [0.0, 0.2], ids=["instant-replies", "replies-take-0.2-s"])
async def test_pings_every_quarter_second_and_gives_up_after_the_silence_limit(
    monkeypatch: pytest.MonkeyPatch, latency: float
) -> None:
    """Subscribed, pinged, then silence: noticed once the limit has passed, and not later.

    A reply slower than one wait for a message (the subscription's confirmation
    included) is no failure of the listener, only a quiet moment.
    """
    with captured_logging() as logs:
        async with listener(monkeypatch, latency) as (redis, cache, invalidator):
            await cache.until(lambda: len(cache.changes) >= 2 or invalidator.listener_failures > 0)
            assert invalidator.listener_failures == 0
            assert [connected for connected, _ in cache.changes[:2]] == [True, False]
            noticed = cache.changes[1][1]
            pings = [moment for moment in redis.pings if moment <= noticed]

    assert events(logs.getvalue(), "invalidation_listener_failed") == []
    [down] = events(logs.getvalue(), "redis_unavailable")
    assert down["error"] == "TimeoutError"

    # A ping is due every quarter second, and goes out at the listener's next
    # look for a message, which comes at most half a heartbeat later.
    assert pings[0] == START
    late = HEARTBEAT_SECONDS * 1.5
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert len(gaps) >= SILENT_AFTER / late - 1  # on and on while Redis answers
    assert max(gaps) <= late, gaps

    # The silence is noticed once the limit has passed, at the next look.
    assert redis.last_answer is not None
    silence = noticed - redis.last_answer
    assert SILENCE_LIMIT_SECONDS <= silence <= SILENCE_LIMIT_SECONDS + HEARTBEAT_SECONDS / 2


async def test_stopping_while_the_connection_closes_ends_the_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop that finds the listener closing its connection (Redis fell silent) ends it.

    The cancellation goes through the close; it is no failure of the listener,
    and the listener does not go on to subscribe again.
    """
    with captured_logging() as logs:
        async with listener(monkeypatch, 0.0, silent_after=0.5) as (redis, cache, invalidator):
            redis.slow_closes = 1
            await asyncio.wait_for(redis.closing.wait(), PATIENCE)
            assert [connected for connected, _ in cache.changes] == [True, False]
            await asyncio.wait_for(invalidator.stop(), PATIENCE)
            assert (redis.subscriptions, invalidator.listener_failures) == (1, 0)
    assert events(logs.getvalue(), "invalidation_listener_failed") == []
    assert [connected for connected, _ in cache.changes] == [True, False]


@pytest.mark.parametrize("latency", [0.0, 0.2], ids=["instant-replies", "replies-take-0.2-s"])
async def test_a_pause_of_the_listeners_own_process_is_no_silence_of_redis(
    monkeypatch: pytest.MonkeyPatch, latency: float
) -> None:
    """Two seconds in which the process did not run (Redis answered all it was asked)
    end nothing: the next ping gets its heartbeat's time to be answered."""
    async with listener(monkeypatch, latency, silent_after=60.0) as (redis, cache, invalidator):
        await cache.until(lambda: cache.connected)
        redis.pause_when_answered = 2.0
        paused_from = redis.clock.now
        await redis.pinged_after(paused_from + 2.0, 10)
        assert redis.clock.now - paused_from > 2.0 + SILENCE_LIMIT_SECONDS
        assert [connected for connected, _ in cache.changes] == [True]
        assert (redis.subscriptions, invalidator.listener_failures) == (1, 0)


async def test_a_redis_that_never_confirms_the_subscription_is_reported_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis that takes the connection but never answers (not even the subscription)
    is a Redis that is down, reported as such: no failure of the listener."""
    with captured_logging() as logs:
        async with listener(monkeypatch, 0.0, silent_after=0.0) as (redis, cache, invalidator):
            await cache.until(
                lambda: (
                    invalidator.listener_failures > 0
                    or bool(events(logs.getvalue(), "redis_unavailable"))
                )
            )
            assert invalidator.listener_failures == 0
            assert redis.last_answer is None
            assert cache.changes == []
    assert events(logs.getvalue(), "invalidation_listener_failed") == []
    [down] = events(logs.getvalue(), "redis_unavailable")
    assert down["error"] == "TimeoutError"


@pytest.mark.parametrize("latency", [0.0, 0.2], ids=["instant-replies", "replies-take-0.2-s"])
async def test_after_a_pause_a_silent_redis_is_noticed_once_a_ping_waited_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch, latency: float
) -> None:
    """The process is paused for two seconds and Redis has fallen silent meanwhile:
    the first ping after the pause gets exactly one heartbeat to be answered."""
    async with listener(monkeypatch, latency, silent_after=60.0) as (redis, cache, invalidator):
        await cache.until(lambda: cache.connected)
        paused_from = redis.clock.now
        redis.silent_from = paused_from + 1.0
        redis.pause_when_answered = 2.0
        await cache.until(lambda: not cache.connected or invalidator.listener_failures > 0)
        assert invalidator.listener_failures == 0
        [ping] = [moment for moment in redis.pings if moment > paused_from + 2.0]
        assert cache.changes[1:] == [(False, ping + HEARTBEAT_SECONDS)]
