"""Prometheus metrics: counted on the hot paths instead of logged.

Counting is plain Python arithmetic: a counter's ``inc()`` adds one to an
int, a histogram's ``observe()`` finds its bucket with ``bisect`` and adds one
to a list entry and the value to a sum. Nothing is formatted, locked or
cumulated until a scrape: ``MetricsCollector`` then turns the numbers into
``prometheus_client`` metric families, and the library writes the text format.

Why no lock: every count is taken on the event loop's thread, by coroutines of
the services (verification, login, rate limits, the revocation follower), and
a scrape reads them on that thread too (``GET /metrics`` is a coroutine), so
no two counts, nor a count and a scrape, ever interleave. Password hashing
runs in worker threads but counts nothing there: ``login_seconds`` is observed
by ``AuthService.login`` on the loop, after the hash's thread has answered.
Whoever counts from another thread must take a lock of its own (``+=`` on an
attribute is a read and a write, which another thread may split).

Each ``Metrics`` has its own registry, so several apps in one process (tests)
never share counts. Labels are fixed, small vocabularies (a result, a policy
name): never a credential, a token, a username, an address or an id.
Children with known labels are made once, so counting costs an increment.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from math import inf

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from keyplane.errors import KeyplaneError, PermissionDenied, ResourceExhausted, Unauthenticated

CONTENT_TYPE = CONTENT_TYPE_LATEST
VERIFY_RESULTS = ("allowed", "unauthenticated", "denied", "limited", "failed")
LOGIN_RESULTS = ("ok", "refused", "limited", "failed")
POLICIES = ("customer", "authfail", "loginfail")
CACHE_RESULTS = ("hit", "miss")
# Microseconds (a cache hit) to a second (a slow database): verification durations.
VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0)
LOGIN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# A bucket's ``le`` as prometheus_client writes it ("0.5", "1.0", "+Inf"); untyped there.
bucket_label: Callable[[float], str] = floatToGoString


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


class Count:
    """One counter's value (one label value of a family): ``inc()`` adds one."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class Counters:
    """A counter family with one label: a ``Count`` per value of its vocabulary."""

    def __init__(self, name: str, documentation: str, label: str, values: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.children = {value: Count() for value in values}

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in self.children.items():
            family.add_metric([value], count.value)
        return family


class Histogram:
    """Counts per bucket (not cumulated: cumulated at a scrape) and their sum.

    A value equal to a bucket's upper bound counts in that bucket (``le``).
    """

    __slots__ = ("bounds", "counts", "documentation", "name", "sum")

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = (*sorted(buckets), inf)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self) -> Metric:
        cumulative = accumulate(self.counts)
        buckets = [
            (bucket_label(bound), float(n))
            for bound, n in zip(self.bounds, cumulative, strict=True)
        ]
        return HistogramMetricFamily(self.name, self.documentation, buckets, self.sum)


class Gauge:
    """A value read at each scrape from the function given to ``set_function``."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self._read: Callable[[], float] = lambda: 0.0

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def family(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, value=self._read())


class MetricsCollector(Collector):
    """Turns the plain counts into metric families when the registry is scraped."""

    def __init__(self, metrics: Sequence[Counters | Histogram | Gauge]) -> None:
        self._metrics = tuple(metrics)

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.family()


class Metrics:
    def __init__(self) -> None:
        verifications = Counters(
            "keyplane_verifications",
            "Credentials verified, by result (allowed, unauthenticated, denied, limited, failed).",
            "result",
            VERIFY_RESULTS,
        )
        self.verifications = verifications.children
        self.verify_seconds = Histogram(
            "keyplane_verification_duration_seconds",
            "Time to verify a credential (cache hits included).",
            VERIFY_BUCKETS,
        )
        logins = Counters(
            "keyplane_logins",
            "Logins, by result (ok, refused, limited, failed).",
            "result",
            LOGIN_RESULTS,
        )
        self.logins = logins.children
        self.login_seconds = Histogram(
            "keyplane_login_duration_seconds",
            "Time to answer a login (argon2id included).",
            LOGIN_BUCKETS,
        )
        refusals = Counters(
            "keyplane_ratelimit_refusals",
            "Requests refused by a rate limit, by policy (customer, authfail, loginfail).",
            "policy",
            POLICIES,
        )
        self.refusals = refusals.children
        cache = Counters(
            "keyplane_verification_cache",
            "Verification cache lookups, by result (hit, miss).",
            "result",
            CACHE_RESULTS,
        )
        self.cache_hits = cache.children["hit"]
        self.cache_misses = cache.children["miss"]
        self.cache_entries = Gauge(
            "keyplane_verification_cache_entries",
            "Entries in this worker's verification cache.",
        )
        self.revocation_lag = Histogram(
            "keyplane_revocation_lag_seconds",
            "From a revocation's commit to this worker's reading of it in the "
            "revocation log (every revocation, including those Redis delivered sooner).",
            LAG_BUCKETS,
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(
            MetricsCollector(
                (
                    verifications,
                    self.verify_seconds,
                    logins,
                    self.login_seconds,
                    refusals,
                    cache,
                    self.cache_entries,
                    self.revocation_lag,
                )
            )
        )

    def refused(self, policy: str) -> None:
        counter = self.refusals.get(policy)
        if counter is not None:
            counter.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
