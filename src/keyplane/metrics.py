"""Prometheus metrics: counted on the hot paths instead of logged.

Each ``Metrics`` has its own registry, so several apps in one process (tests)
never share counts. Labels are fixed, small vocabularies (a result, a policy
name): never a credential, a token, a username, an address or an id.
Children with known labels are bound once, so counting costs an increment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from keyplane.errors import KeyplaneError, PermissionDenied, ResourceExhausted, Unauthenticated

CONTENT_TYPE = CONTENT_TYPE_LATEST
VERIFY_RESULTS = ("allowed", "unauthenticated", "denied", "limited", "failed")
LOGIN_RESULTS = ("ok", "refused", "limited", "failed")
POLICIES = ("customer", "authfail", "loginfail")
# Microseconds (a cache hit) to a second (a slow database): verification durations.
VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0)
LOGIN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def verify_result(error: BaseException | None) -> str:
    """The ``result`` label of a verification that raised ``error`` (None: allowed)."""
    if error is None:
        return "allowed"
    if isinstance(error, ResourceExhausted):
        return "limited"
    if isinstance(error, Unauthenticated):
        return "unauthenticated"
    if isinstance(error, PermissionDenied):
        return "denied"  # a restricted key's scopes or IP allowlist
    return "failed"


def login_result(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, ResourceExhausted):
        return "limited"
    if isinstance(error, KeyplaneError) and error.status == "INVALID_ARGUMENT":
        return "refused"
    return "failed"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        verifications = Counter(
            "keyplane_verifications",
            "Credentials verified, by result (allowed, unauthenticated, denied, limited, failed).",
            ["result"],
            registry=self.registry,
        )
        self.verifications = {r: verifications.labels(r) for r in VERIFY_RESULTS}
        self.verify_seconds = Histogram(
            "keyplane_verification_duration_seconds",
            "Time to verify a credential (cache hits included).",
            buckets=VERIFY_BUCKETS,
            registry=self.registry,
        )
        logins = Counter(
            "keyplane_logins",
            "Logins, by result (ok, refused, limited, failed).",
            ["result"],
            registry=self.registry,
        )
        self.logins = {r: logins.labels(r) for r in LOGIN_RESULTS}
        self.login_seconds = Histogram(
            "keyplane_login_duration_seconds",
            "Time to answer a login (argon2id included).",
            buckets=LOGIN_BUCKETS,
            registry=self.registry,
        )
        refusals = Counter(
            "keyplane_ratelimit_refusals",
            "Requests refused by a rate limit, by policy (customer, authfail, loginfail).",
            ["policy"],
            registry=self.registry,
        )
        self.refusals = {p: refusals.labels(p) for p in POLICIES}
        cache = Counter(
            "keyplane_verification_cache",
            "Verification cache lookups, by result (hit, miss).",
            ["result"],
            registry=self.registry,
        )
        self.cache_hits = cache.labels("hit")
        self.cache_misses = cache.labels("miss")
        self.cache_entries = Gauge(
            "keyplane_verification_cache_entries",
            "Entries in this worker's verification cache.",
            registry=self.registry,
        )
        self.revocation_lag = Histogram(
            "keyplane_revocation_lag_seconds",
            "From a revocation's commit to this worker's reading of it in the "
            "revocation log (every revocation, including those Redis delivered sooner).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )

    def refused(self, policy: str) -> None:
        counter = self.refusals.get(policy)
        if counter is not None:
            counter.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
