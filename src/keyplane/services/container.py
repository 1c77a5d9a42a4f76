"""Builds every service from the settings; the one place they are wired."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keyplane.cache.invalidation import Invalidator, LocalInvalidator, RedisInvalidator
from keyplane.cache.ratelimit import (
    BatchingLimiter,
    Limiter,
    MemoryLimiter,
    Policy,
    RedisLimiter,
)
from keyplane.cache.verification import VerificationCache
from keyplane.domain.clock import Clock, SystemClock
from keyplane.domain.passwords import PasswordHashing
from keyplane.domain.sessions import SessionCodec
from keyplane.errors import KeyplaneError
from keyplane.metrics import Metrics
from keyplane.services.accesskeys import AccesskeyService
from keyplane.services.admission import MissAdmission
from keyplane.services.audit import AuditRetention, AuditService
from keyplane.services.auth import AuthService, PasswordWorker, VerificationLookups
from keyplane.services.customers import CustomerService
from keyplane.services.events import OutboxRetention
from keyplane.services.notices import ExpiryNotifier
from keyplane.services.outbound import OutboundClient
from keyplane.services.ratelimits import RateLimits
from keyplane.services.revocations import RevocationFollower
from keyplane.services.sessions import (
    KEEP_AFTER_EXPIRY_DAYS,
    RevokedSessionRetention,
    SessionService,
)
from keyplane.services.usage import LastUsedRecorder
from keyplane.services.webhooks import DispatchPolicy, WebhookDispatcher, WebhookService
from keyplane.settings import Settings
from keyplane.store import migrate
from keyplane.store.engine import Database, create_engine, sqlite_path


@dataclass(slots=True)
class Services:
    settings: Settings
    clock: Clock
    database: Database
    passwords: PasswordWorker
    cache: VerificationCache
    invalidator: Invalidator
    limiter: Limiter
    ratelimits: RateLimits
    revocations: RevocationFollower
    usage: LastUsedRecorder
    auth: AuthService
    sessions: SessionService
    accesskeys: AccesskeyService
    customers: CustomerService
    webhooks: WebhookService
    dispatcher: WebhookDispatcher
    notices: ExpiryNotifier
    audit: AuditService
    audit_retention: AuditRetention
    outbox: OutboxRetention
    session_retention: RevokedSessionRetention
    metrics: Metrics

    async def migrate(self) -> None:
        async with self.database.mapped_errors():
            await migrate.upgrade(self.database.engine)

    async def start(self) -> None:
        """Background work of a serving replica: invalidations, revocation log, last used,
        webhook delivery, expiring-soon notices, audit, outbox and ended-session retention."""
        await self.invalidator.start()
        await self.revocations.start()
        await self.usage.start()
        await self.dispatcher.start()
        await self.notices.start()
        await self.audit_retention.start()
        await self.outbox.start()
        await self.session_retention.start()

    async def close(self) -> None:
        await self.session_retention.stop()
        await self.outbox.stop()
        await self.audit_retention.stop()
        await self.notices.stop()
        await self.dispatcher.stop()
        await self.usage.stop()
        await self.revocations.stop()
        await self.invalidator.stop()
        await self.limiter.close()
        await self.database.dispose()

    async def readiness(self) -> dict[str, str]:
        """``ok`` or what is wrong, per dependency."""
        checks: dict[str, str] = {}
        try:
            await self.database.ping()
            checks["database"] = "ok"
        except KeyplaneError:
            checks["database"] = "unavailable"
        if self.settings.redis_url:
            client = aioredis.Redis.from_url(
                self.settings.redis_url, socket_timeout=1, socket_connect_timeout=1
            )
            try:
                await client.ping()
                checks["redis"] = "ok"
            except (RedisError, OSError):
                checks["redis"] = "unavailable"
            finally:
                await client.aclose()
            # Without the channel, revocations arrive through the revocation log only.
            checks["invalidations"] = "ok" if self.cache.connected else "fallback"
        return checks


def customer_batch(burst: int) -> int:
    """How much of a customer's budget a replica takes from Redis at once (5% of the burst)."""
    return max(1, min(100, burst // 20))


def miss_admission(settings: Settings) -> MissAdmission:
    """The gate of verification cache misses: one at a time where reads never wait."""
    concurrency = settings.verify_miss_concurrency
    if concurrency is None:
        concurrency = 1 if sqlite_path(settings.database_url) is not None else 4
    return MissAdmission(concurrency, settings.verify_miss_queue)


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    database = Database(
        create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        ),
        timeout=settings.database_timeout,
    )
    passwords = PasswordWorker(PasswordHashing(settings.argon2), settings.password_hash_concurrency)
    jwt_secret = settings.resolve_jwt_secret()
    sessions = SessionCodec(jwt_secret, timedelta(seconds=settings.session_ttl))
    cache = VerificationCache(
        max_entries=settings.cache_max_entries,
        ttl=settings.cache_ttl,
        fallback_ttl=settings.cache_fallback_ttl,
        negative_ttl=settings.cache_negative_ttl,
    )
    metrics = Metrics()
    metrics.cache_entries.set_function(lambda: len(cache))
    invalidator: Invalidator
    limiter: Limiter
    if settings.redis_url:
        invalidator = RedisInvalidator(cache, settings.redis_url)
        # Counters in Redis are keyed by an HMAC under a secret every replica shares.
        key_secret = hmac.new(jwt_secret, b"keyplane rate-limit keys", hashlib.sha256).digest()
        # The customer's budget is taken from Redis in batches, so a verification
        # answered from the cache needs no round trip (docs/security.md).
        limiter = BatchingLimiter(
            RedisLimiter(settings.redis_url, key_secret=key_secret),
            {"customer"},
            batch=customer_batch(settings.ratelimit_customer_burst),
        )
    else:
        invalidator = LocalInvalidator(cache)
        limiter = MemoryLimiter()
    ratelimits = RateLimits(
        limiter,
        customer=Policy(
            "customer",
            settings.ratelimit_customer_per_second,
            1.0,
            settings.ratelimit_customer_burst,
        ),
        auth_failures=Policy(
            "authfail",
            settings.ratelimit_auth_failures_per_minute,
            60.0,
            settings.ratelimit_auth_failures_burst,
        ),
        login_failures=Policy(
            "loginfail",
            settings.ratelimit_login_failures_per_minute,
            60.0,
            settings.ratelimit_login_failures_burst,
        ),
        metrics=metrics,
    )
    usage = LastUsedRecorder(database, clock, interval=settings.last_used_flush_interval)
    lookups = VerificationLookups(database, cache, metrics)
    webhook_key = settings.resolve_webhook_key()
    dispatcher = WebhookDispatcher(
        database,
        clock,
        OutboundClient(
            allowed=settings.webhook_networks,
            timeout=settings.webhook_timeout,
            max_body_bytes=settings.webhook_max_body_bytes,
        ),
        webhook_key,
        DispatchPolicy(
            poll_interval=settings.webhook_poll_interval,
            batch=50,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            max_attempts=settings.webhook_max_attempts,
            backoff_base=settings.webhook_backoff_base,
            backoff_max=settings.webhook_backoff_max,
        ),
    )
    return Services(
        settings=settings,
        clock=clock,
        database=database,
        passwords=passwords,
        cache=cache,
        invalidator=invalidator,
        limiter=limiter,
        ratelimits=ratelimits,
        revocations=RevocationFollower(database, cache, clock, metrics=metrics),
        usage=usage,
        auth=AuthService(
            database,
            clock,
            passwords,
            sessions,
            lookups,
            ratelimits,
            usage,
            miss_admission(settings),
        ),
        sessions=SessionService(database, clock, sessions, invalidator),
        accesskeys=AccesskeyService(
            database, clock, invalidator, max_expire=settings.accesskey_max_expire
        ),
        customers=CustomerService(database, clock, passwords, invalidator),
        webhooks=WebhookService(database, clock, webhook_key),
        dispatcher=dispatcher,
        notices=ExpiryNotifier(
            database,
            clock,
            lead_days=settings.expiring_notice_days,
            interval=settings.accesskey_expiring_scan_interval,
        ),
        audit=AuditService(database),
        audit_retention=AuditRetention(
            database, clock, retention_days=settings.audit_retention_days
        ),
        outbox=OutboxRetention(database, clock, retention_days=settings.event_retention_days),
        session_retention=RevokedSessionRetention(
            database, clock, retention_days=KEEP_AFTER_EXPIRY_DAYS
        ),
        metrics=metrics,
    )
