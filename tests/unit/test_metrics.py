"""The plain counts behind /metrics, and what a scrape makes of them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from keyplane.metrics import (
    LAG_BUCKETS,
    LOGIN_BUCKETS,
    VERIFY_BUCKETS,
    Count,
    Counters,
    Gauge,
    Histogram,
    Metrics,
)


def scraped(metrics: Metrics) -> dict[str, tuple[str, str, list[Sample]]]:
    """Each family of a scrape: its type, help and samples."""
    return {
        family.name: (family.type, family.documentation, family.samples)
        for family in text_string_to_metric_families(metrics.exposition().decode())
    }


def buckets(samples: list[Sample]) -> list[tuple[str, float]]:
    return [(s.labels["le"], s.value) for s in samples if s.name.endswith("_bucket")]


def named(samples: list[Sample], suffix: str) -> float:
    (value,) = [s.value for s in samples if s.name.endswith(suffix)]
    return value


def test_a_count_adds_one_per_inc() -> None:
    count = Count()
    for _ in range(3):
        count.inc()
    assert count.value == 3


def test_a_value_on_a_bound_counts_in_that_bucket_and_beyond_the_last_in_inf() -> None:
    histogram = Histogram("h", "A histogram.", (0.5, 0.1, 1.0))  # sorted when made
    for value in (0.0, 0.1, 0.1000001, 0.5, 1.0, 1.5, 7.0):
        histogram.observe(value)
    family = histogram.family()
    assert buckets(family.samples) == [("0.1", 2.0), ("0.5", 4.0), ("1.0", 5.0), ("+Inf", 7.0)]
    assert named(family.samples, "_count") == 7.0
    assert named(family.samples, "_sum") == 0.0 + 0.1 + 0.1000001 + 0.5 + 1.0 + 1.5 + 7.0


def test_an_empty_histogram_has_every_bucket_at_zero() -> None:
    family = Histogram("h", "A histogram.", (1.0, 2.0)).family()
    assert buckets(family.samples) == [("1.0", 0.0), ("2.0", 0.0), ("+Inf", 0.0)]
    assert named(family.samples, "_count") == 0.0
    assert named(family.samples, "_sum") == 0.0


def test_a_counter_family_has_a_sample_per_label_value_zeros_included() -> None:
    counters = Counters("c", "Counted.", "result", ("yes", "no"))
    counters.children["no"].inc()
    counters.children["no"].inc()
    family = counters.family()
    assert family.type == "counter"
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("c_total", {"result": "yes"}, 0.0),
        ("c_total", {"result": "no"}, 2.0),
    ]


def test_a_gauge_is_read_at_each_scrape() -> None:
    gauge = Gauge("g", "Gauged.")
    assert gauge.family().samples[0].value == 0.0
    size = [3]
    gauge.set_function(lambda: size[0])
    assert gauge.family().samples[0].value == 3.0
    size[0] = 5
    assert gauge.family().samples[0].value == 5.0


def test_a_scrape_has_every_family_its_help_labels_and_buckets() -> None:
    metrics = Metrics()
    families = scraped(metrics)
    assert list(families) == [
        "keyplane_verifications",
        "keyplane_verification_duration_seconds",
        "keyplane_logins",
        "keyplane_login_duration_seconds",
        "keyplane_ratelimit_refusals",
        "keyplane_verification_cache",
        "keyplane_verification_cache_entries",
        "keyplane_revocation_lag_seconds",
    ]
    types = {name: kind for name, (kind, _, _) in families.items()}
    assert types["keyplane_verifications"] == "counter"
    assert types["keyplane_verification_cache_entries"] == "gauge"
    assert types["keyplane_revocation_lag_seconds"] == "histogram"
    _, documentation, samples = families["keyplane_verifications"]
    assert documentation == (
        "Credentials verified, by result (allowed, unauthenticated, denied, limited, failed)."
    )
    assert [s.labels["result"] for s in samples] == [
        "allowed",
        "unauthenticated",
        "denied",
        "limited",
        "failed",
    ]
    policies = [s.labels["policy"] for s in families["keyplane_ratelimit_refusals"][2]]
    assert policies == ["customer", "authfail", "loginfail"]
    cache = [s.labels["result"] for s in families["keyplane_verification_cache"][2]]
    assert cache == ["hit", "miss"]
    for name, bounds in (
        ("keyplane_verification_duration_seconds", VERIFY_BUCKETS),
        ("keyplane_login_duration_seconds", LOGIN_BUCKETS),
        ("keyplane_revocation_lag_seconds", LAG_BUCKETS),
    ):
        les = [le for le, _ in buckets(families[name][2])]
        assert [float(le) for le in les] == [*bounds, float("inf")]
    every = [s.name for _, _, samples in families.values() for s in samples]
    assert not [name for name in every if name.endswith("_created")]


def test_a_scrape_shows_exactly_what_was_counted() -> None:
    metrics = Metrics()
    metrics.cache_entries.set_function(lambda: 4)
    metrics.verifications["allowed"].inc()
    metrics.verifications["allowed"].inc()
    metrics.verifications["limited"].inc()
    for seconds in (0.00002, 0.0001, 0.3):
        metrics.verify_seconds.observe(seconds)
    metrics.logins["refused"].inc()
    metrics.login_seconds.observe(0.05)
    metrics.refused("authfail")
    metrics.refused("no such policy")  # not a label value: not counted
    metrics.cache_hits.inc()
    metrics.cache_misses.inc()
    metrics.cache_misses.inc()
    families = scraped(metrics)

    def values(name: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in families[name][2]}

    assert values("keyplane_verifications", "result") == {
        "allowed": 2.0,
        "unauthenticated": 0.0,
        "denied": 0.0,
        "limited": 1.0,
        "failed": 0.0,
    }
    verify = families["keyplane_verification_duration_seconds"][2]
    assert buckets(verify)[:3] == [("0.0001", 2.0), ("0.00025", 2.0), ("0.0005", 2.0)]
    assert buckets(verify)[-3:] == [("0.5", 3.0), ("1.0", 3.0), ("+Inf", 3.0)]
    assert named(verify, "_count") == 3.0
    assert named(verify, "_sum") == 0.00002 + 0.0001 + 0.3
    assert values("keyplane_logins", "result")["refused"] == 1.0
    login = families["keyplane_login_duration_seconds"][2]
    assert buckets(login)[1:3] == [("0.025", 0.0), ("0.05", 1.0)]
    assert values("keyplane_ratelimit_refusals", "policy") == {
        "customer": 0.0,
        "authfail": 1.0,
        "loginfail": 0.0,
    }
    assert values("keyplane_verification_cache", "result") == {"hit": 1.0, "miss": 2.0}
    assert families["keyplane_verification_cache_entries"][2][0].value == 4.0
    assert named(families["keyplane_revocation_lag_seconds"][2], "_count") == 0.0


def test_two_metrics_never_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.verifications["allowed"].inc()
    first.verify_seconds.observe(0.001)
    assert second.verifications["allowed"].value == 0
    assert second.verify_seconds.counts == [0] * len(second.verify_seconds.counts)
