"""Rate limits with GCRA (the generic cell rate algorithm).

One number per key, the theoretical arrival time (TAT), in Redis so every
replica shares it, or in memory when no Redis is configured or it is
unreachable (each replica then limits on its own, and says so once in the log).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keyplane.logs import get_logger

log = get_logger("keyplane.ratelimit")


@dataclass(frozen=True, slots=True)
class Policy:
    """``rate`` requests per ``period`` seconds, with bursts up to ``burst``."""

    name: str
    rate: float
    period: float
    burst: int

    @property
    def interval(self) -> float:
        return self.period / self.rate


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the bucket is full again
    retry_after: float  # seconds until one more request would pass (0 when allowed)


SLACK = 1e-6  # seconds


def _decide(policy: Policy, tat: float, now: float, cost: int) -> tuple[Decision, float | None]:
    """Pure GCRA step; returns the decision and the new TAT to store (None: store nothing)."""
    interval = policy.interval
    tolerance = interval * policy.burst
    # Reckoned from now (how far the TAT is ahead of it), and with a microsecond's
    # slack: in floating point a request taking exactly the rest of the burst, or
    # sent exactly at its retry time, would otherwise be refused by a rounding.
    ahead = max(tat - now, 0.0)
    new_ahead = ahead + interval * cost
    if new_ahead > tolerance + SLACK:
        return (
            Decision(False, policy.burst, 0, ahead, new_ahead - tolerance),
            None,
        )
    remaining = max(0, math.floor((tolerance - new_ahead) / interval + 1e-9))
    return Decision(True, policy.burst, remaining, new_ahead, 0.0), now + new_ahead


class Limiter(Protocol):
    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision: ...

    async def peek(self, policy: Policy, key: str) -> Decision: ...

    async def refund(self, policy: Policy, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._max = max_keys

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        return self.step(policy, key, cost, store=True)

    async def peek(self, policy: Policy, key: str) -> Decision:
        return self.step(policy, key, 1, store=False)

    async def refund(self, policy: Policy, key: str) -> None:
        self.give_back(policy, key)

    def give_back(self, policy: Policy, key: str, cost: int = 1) -> None:
        """Return ``cost`` requests' worth of budget (never more than a full bucket)."""
        full_key = f"{policy.name}:{key}"
        tat = self._tats.get(full_key)
        if tat is not None:
            self._tats[full_key] = max(time.monotonic(), tat - policy.interval * cost)

    def _evict(self, full_key: str) -> None:
        self._tats.move_to_end(full_key)
        while len(self._tats) > self._max:
            self._tats.popitem(last=False)

    def step(self, policy: Policy, key: str, cost: int, *, store: bool) -> Decision:
        now = time.monotonic()
        full_key = f"{policy.name}:{key}"
        decision, new_tat = _decide(policy, self._tats.get(full_key, now), now, cost)
        if store and new_tat is not None:
            self._tats[full_key] = new_tat
            self._evict(full_key)
        return decision

    async def close(self) -> None:
        return None


# TAT kept in milliseconds of Redis's own clock, so replicas' clocks don't matter.
_GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local store = ARGV[4] == "1"
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
-- Reckoned from now and with a microsecond's slack, as in _decide.
local ahead = math.max(tat - now, 0)
local new_ahead = ahead + interval * cost
if new_ahead > tolerance + 0.001 then
  return {0, tostring(ahead), tostring(new_ahead - tolerance)}
end
if store then
  redis.call("SET", KEYS[1], tostring(now + new_ahead), "PX", math.ceil(new_ahead) + 1)
end
return {1, tostring(new_ahead), tostring(tolerance - new_ahead)}
"""


_REFUND_SCRIPT = """
local interval = tonumber(ARGV[1])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call("GET", KEYS[1]) or 0)
if tat <= now then return 0 end
local new_tat = math.max(now, tat - interval)
redis.call("SET", KEYS[1], tostring(new_tat), "PX", math.ceil(new_tat - now) + 1)
return 1
"""

# After Redis fails, it is left alone this long: a hung Redis must not make
# every request wait for a timeout.
RETRY_REDIS_AFTER = 1.0


class RedisLimiter:
    """Shared limits; falls back to a per-replica ``MemoryLimiter`` while Redis is away.

    The fallback also keeps this replica's own account while Redis answers:
    a request takes its share there first (refused at once when this replica
    alone has spent the budget), gives it back when Redis refuses, and keeps it
    when Redis admits it or cannot be asked. So a replica never admits more
    than one budget of a key by itself, even when Redis stops answering (or
    comes back) in the middle of a burst; only while Redis is away can N
    replicas admit up to N budgets between them.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        key_secret: bytes,
        timeout: float = 0.5,
        max_connections: int = 50,
        pool_timeout: float = 5.0,
    ) -> None:
        # A burst waits its turn for a connection (up to ``pool_timeout``) instead
        # of failing, which would hand it the fallback's fresh budget. The wait
        # is for the loop to get round to the requests holding connections (a
        # burst of hundreds in one process), not for Redis: each call still
        # fails after ``timeout`` when Redis does not answer.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._key_secret = key_secret
        self._script = self._client.register_script(_GCRA_SCRIPT)
        self._refund = self._client.register_script(_REFUND_SCRIPT)
        self._fallback = MemoryLimiter()
        self._down = False
        self._skip_until: float | None = None  # set while Redis is being skipped

    def redis_key(self, policy: Policy, key: str) -> str:
        """The Redis key of a counter: an HMAC, so a copy of Redis shows no username or address."""
        digest = hmac.new(self._key_secret, key.encode(), hashlib.sha256).hexdigest()
        return f"keyplane:rl:{policy.name}:{digest[:32]}"

    def _skipping_redis(self) -> bool:
        return self._skip_until is not None and time.monotonic() < self._skip_until

    def _redis_failed(self, error: BaseException) -> None:
        self._skip_until = time.monotonic() + RETRY_REDIS_AFTER
        if not self._down:
            self._down = True
            log.warning(
                "redis_unavailable",
                error=type(error).__name__,
                effect="rate limits are kept per replica until redis is back",
            )

    async def refund(self, policy: Policy, key: str) -> None:
        if self._skipping_redis():
            self._fallback.give_back(policy, key)
            return
        self._fallback.give_back(policy, key)
        try:
            await self._refund(keys=[self.redis_key(policy, key)], args=[policy.interval * 1000])
        except (RedisError, OSError) as error:
            self._redis_failed(error)

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        return await self._step(policy, key, cost, store=True)

    async def peek(self, policy: Policy, key: str) -> Decision:
        return await self._step(policy, key, 1, store=False)

    async def _step(self, policy: Policy, key: str, cost: int, *, store: bool) -> Decision:
        if self._skipping_redis():
            return self._fallback.step(policy, key, cost, store=store)
        local: Decision | None = None
        if store:
            # This replica's own account, taken before the round trip: a floor
            # for the shared count, and the answer if Redis cannot be asked.
            local = self._fallback.step(policy, key, cost, store=True)
            if not local.allowed:
                return local
        interval_ms = policy.interval * 1000
        try:
            allowed, reset_ms, third = await self._script(
                keys=[self.redis_key(policy, key)],
                args=[interval_ms, interval_ms * policy.burst, cost, "1" if store else "0"],
            )
        except (RedisError, OSError) as error:
            self._redis_failed(error)
            if local is not None:
                return local
            return self._fallback.step(policy, key, cost, store=False)
        if self._down:
            self._down = False
            log.info("redis_recovered", effect="rate limits shared again")
        reset_after = float(reset_ms) / 1000
        if int(allowed) == 1:
            remaining = max(0, math.floor(float(third) / interval_ms + 1e-9))
            return Decision(True, policy.burst, remaining, reset_after, 0.0)
        if store:
            self._fallback.give_back(policy, key, cost)
        return Decision(False, policy.burst, 0, reset_after, float(third) / 1000)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass(slots=True)
class _Reserve:
    left: int  # requests reserved in the shared limiter, not spent yet
    until: float  # unspent ones lapse then
    decision: Decision  # the shared limiter's answer when they were reserved


class BatchingLimiter:
    """Takes budget from a shared limiter in batches, for the policies named.

    A replica reserves ``batch`` requests of a key in one round trip (a GCRA
    step of cost ``batch``) and spends them locally for up to ``hold`` seconds;
    what is left then lapses. Every admitted request was reserved in the shared
    limiter, so the rate holds over time; but reserved requests are spent up to
    ``hold`` seconds after they were taken, so across N replicas a key can see
    up to N times ``batch`` requests more than its burst within one ``hold``. When
    the shared limiter cannot spare a whole batch, requests go one at a time,
    exactly as without batching. Other policies, refunds and peeks pass through.
    """

    def __init__(
        self,
        inner: Limiter,
        policies: set[str],
        *,
        batch: int,
        hold: float = 1.0,
        max_keys: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self._policies = frozenset(policies)
        self._batch = max(1, batch)
        self._hold = hold
        self._max = max_keys
        self._now = monotonic
        self._reserves: OrderedDict[str, _Reserve] = OrderedDict()
        self._refills: dict[str, anyio.Event] = {}

    async def hit(self, policy: Policy, key: str, *, cost: int = 1) -> Decision:
        batch = min(self._batch, policy.burst)
        if policy.name not in self._policies or cost != 1 or batch <= 1:
            return await self.inner.hit(policy, key, cost=cost)
        full_key = f"{policy.name}:{key}"
        while True:
            now = self._now()
            reserve = self._reserves.get(full_key)
            if reserve is not None and reserve.left > 0 and reserve.until > now:
                reserve.left -= 1
                shared = reserve.decision
                return Decision(
                    True, shared.limit, shared.remaining + reserve.left, shared.reset_after, 0.0
                )
            refill = self._refills.get(full_key)
            if refill is None:
                break
            # One batch at a time per key: the requests arriving meanwhile wait
            # for it instead of each reserving a batch that would then lapse.
            await refill.wait()
            if full_key not in self._reserves:
                return await self.inner.hit(policy, key, cost=1)  # the batch was refused
        refill = self._refills[full_key] = anyio.Event()
        try:
            return await self._refill(policy, key, full_key, batch, now)
        finally:
            del self._refills[full_key]
            refill.set()

    async def _refill(
        self, policy: Policy, key: str, full_key: str, batch: int, now: float
    ) -> Decision:
        decision = await self.inner.hit(policy, key, cost=batch)
        if not decision.allowed:
            self._reserves.pop(full_key, None)
            return await self.inner.hit(policy, key, cost=1)
        self._reserves[full_key] = _Reserve(batch - 1, now + self._hold, decision)
        self._reserves.move_to_end(full_key)
        while len(self._reserves) > self._max:
            self._reserves.popitem(last=False)
        return Decision(
            True, decision.limit, decision.remaining + batch - 1, decision.reset_after, 0.0
        )

    async def peek(self, policy: Policy, key: str) -> Decision:
        return await self.inner.peek(policy, key)

    async def refund(self, policy: Policy, key: str) -> None:
        await self.inner.refund(policy, key)

    async def close(self) -> None:
        await self.inner.close()
