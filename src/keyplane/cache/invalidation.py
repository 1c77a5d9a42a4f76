"""Telling every replica, at once, that a cached entry is stale.

A change is evicted from the local cache at once, then published on a Redis
channel that every replica subscribes to. The subscriber pings Redis every
quarter second on its own connection; when the channel fails or goes quiet,
the cache drops everything and keeps positive entries only for the short
fallback TTL until the channel is back (then it starts afresh once more).

This is the fast path. Pub/sub delivers at most once, so every change is
also in the database's revocation log (``keyplane.services.revocations``),
which every replica follows: a message that is lost, or never published,
still arrives within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keyplane.background import BackgroundTask
from keyplane.cache.verification import VerificationCache
from keyplane.logs import get_logger

CHANNEL = "keyplane:invalidations"
HEARTBEAT_SECONDS = 0.25
SILENCE_LIMIT_SECONDS = 0.75
RECONNECT_DELAY_SECONDS = 0.5
# A real message is under 200 bytes; anything far larger is not ours.
MAX_MESSAGE_BYTES = 1024

log = get_logger("keyplane.cache")

Kind = Literal["accesskey", "agent", "customer", "session"]
KINDS: tuple[Kind, ...] = ("accesskey", "agent", "customer", "session")


@dataclass(frozen=True, slots=True)
class Invalidation:
    kind: Kind
    id: uuid.UUID
    token_hash: str | None = None

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "id": str(self.id), "hash": self.token_hash})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Invalidation:
        """Raises ``ValueError`` for anything that is not an invalidation."""
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ValueError(f"not an invalidation message: over {MAX_MESSAGE_BYTES} bytes")
        try:
            data: dict[str, Any] = json.loads(raw)
            kind = data["kind"]
            if kind not in KINDS:
                raise ValueError(f"unknown invalidation kind {kind!r}")
            token_hash = data.get("hash")
            if token_hash is not None and not isinstance(token_hash, str):
                raise ValueError("hash must be a string")
            return cls(kind, uuid.UUID(data["id"]), token_hash)
        except (KeyError, TypeError, AttributeError, RecursionError) as error:
            raise ValueError(f"not an invalidation message: {type(error).__name__}") from None


def apply(cache: VerificationCache, change: Invalidation) -> None:
    if change.kind == "accesskey" and change.token_hash:
        cache.invalidate_key(change.token_hash)
    elif change.kind == "agent":
        cache.invalidate_agent(change.id)
    elif change.kind == "session":
        cache.invalidate_session(change.id)
    else:
        cache.invalidate_customer(change.id)


class Invalidator(Protocol):
    cache: VerificationCache

    async def publish(self, change: Invalidation) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class LocalInvalidator:
    """No Redis: evict locally; other processes rely on the short fallback TTL."""

    def __init__(self, cache: VerificationCache) -> None:
        self.cache = cache

    async def publish(self, change: Invalidation) -> None:
        apply(self.cache, change)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisInvalidator:
    """Evict locally, publish to every replica, and listen for the others."""

    def __init__(self, cache: VerificationCache, redis_url: str, *, timeout: float = 1.0) -> None:
        self.cache = cache
        self._redis_url = redis_url
        self._timeout = timeout
        self._publisher: aioredis.Redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._task = BackgroundTask(
            "keyplane-invalidations", self._listen_forever, interruptible=True
        )
        self._reported_down = False
        self.listener_failures = 0  # unexpected errors survived by the listener

    async def publish(self, change: Invalidation) -> None:
        apply(self.cache, change)
        try:
            await self._publisher.publish(CHANNEL, change.to_json())
        except (RedisError, OSError) as error:
            # The revocation log brings the change to the other replicas anyway.
            self._report_down(error)

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._publisher.aclose()

    def _report_down(self, error: BaseException) -> None:
        if not self._reported_down:
            self._reported_down = True
            log.warning(
                "redis_unavailable",
                error=type(error).__name__,
                effect="verification cache falls back to its short TTL",
            )

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                self.cache.set_connected(False)
                raise
            except (RedisError, OSError, TimeoutError) as error:
                self.cache.set_connected(False)
                self._report_down(error)
            except Exception as error:  # the listener must never die
                # Whatever went wrong, the cache forgets what it cannot vouch for and
                # the revocation log carries changes until the channel is back.
                self.cache.set_connected(False)
                self.listener_failures += 1
                log.error("invalidation_listener_failed", error=type(error).__name__)
            await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    def _receive(self, data: Any) -> None:
        try:
            change = Invalidation.from_json(data)
        except ValueError as error:
            # Someone else's message on our channel: drop the whole cache to be safe.
            log.warning("invalidation_message_ignored", error=str(error))
            self.cache.clear()
            return
        apply(self.cache, change)

    async def _listen(self) -> None:
        client = aioredis.Redis.from_url(
            self._redis_url,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
        )
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            last_heard = time.monotonic()
            last_ping: float | None = None  # ping at once, however young the machine
            unanswered_since: float | None = None  # the first ping sent since last heard
            while True:
                now = time.monotonic()
                if last_ping is None or now - last_ping >= HEARTBEAT_SECONDS:
                    await pubsub.ping()
                    last_ping = now
                    if unanswered_since is None:
                        unanswered_since = now
                message = await pubsub.get_message(timeout=HEARTBEAT_SECONDS / 2)
                if message is not None:
                    last_heard = time.monotonic()
                    unanswered_since = None
                    kind = message.get("type")
                    if kind == "subscribe":
                        self.cache.set_connected(True)
                        if self._reported_down:
                            self._reported_down = False
                            log.info("redis_recovered", effect="invalidations resumed")
                    elif kind == "message":
                        self._receive(message["data"])
                elif _silent(now + HEARTBEAT_SECONDS / 2, last_heard, unanswered_since):
                    raise TimeoutError("no answer from redis on the invalidation channel")
        finally:
            self.cache.set_connected(False)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
                await client.aclose()


def _silent(quiet_until: float, last_heard: float, unanswered_since: float | None) -> bool:
    """Redis has said nothing for too long: the silence limit has passed since it was
    last heard, and a ping has waited at least a heartbeat for its answer.

    ``quiet_until`` is when the empty wait for a message was due to end, not
    when this process got round to noticing: a busy machine can pause the
    process for a second after the wait (or before the last ping), and that
    pause is no silence of Redis.
    """
    return (
        quiet_until - last_heard > SILENCE_LIMIT_SECONDS
        and unanswered_since is not None
        and quiet_until - unanswered_since >= HEARTBEAT_SECONDS
    )
