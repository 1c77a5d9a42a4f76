"""benchmarks/capacity_sim.py runs briefly and answers sensibly (docs/capacity.md)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from benchmarks.capacity_sim import LOG_POLL_SECONDS, SIZES, Measured, Scenario, main, simulate

SMALL = Scenario(
    "small",
    keys=2_000,
    customers=50,
    rate=400,
    replicas=2,
    seconds=30,
    cache_entries=5_000,
    ttl=60,
    customer_skew=1.3,
    revocations_per_second=2,
    restarts=((20.0, 1, 2.0),),
    window=5,
)


def test_the_same_scenario_gives_the_same_report() -> None:
    assert simulate(SMALL) == simulate(SMALL)


def test_a_restart_empties_that_replicas_cache_and_the_hit_rate_dips() -> None:
    report = simulate(SMALL)
    windows = report.hit_rate_by_window
    assert 0 < report.hit_rate < 1
    before, after = windows[3], windows[4]  # 15-20 s, then 20-25 s with the restart
    assert after < before
    quiet = simulate(replace(SMALL, restarts=()))
    assert quiet.hit_rate_by_window[4] > after


def test_a_cache_holding_every_key_only_misses_each_key_once_per_replica() -> None:
    report = simulate(replace(SMALL, restarts=(), ttl=3600))
    distinct_per_replica = SMALL.keys  # at most
    assert report.db_reads_per_second * SMALL.seconds <= 2 * distinct_per_replica
    assert report.cache_entries_per_replica <= SMALL.keys


def test_a_small_cache_misses_more() -> None:
    assert simulate(replace(SMALL, cache_entries=100)).hit_rate < simulate(SMALL).hit_rate


def test_revocation_lag_is_pubsub_unless_messages_are_lost() -> None:
    measured = Measured(pubsub_lag_ms=3.0, log_read_ms=2.0)
    delivered = simulate(SMALL, measured).revocation_lag_ms
    lost = simulate(replace(SMALL, redis_loss=1.0), measured).revocation_lag_ms
    assert delivered["p50"] < 10
    assert lost["max"] <= LOG_POLL_SECONDS * 1000 + measured.log_read_ms
    assert lost["p50"] > delivered["p50"]


def test_redis_messages_and_log_reads_follow_the_replica_count() -> None:
    report = simulate(replace(SMALL, replicas=10))
    assert report.redis_messages_per_revocation == 11
    assert report.log_reads_per_second == 10 / LOG_POLL_SECONDS


def test_the_command_line_prints_a_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(SIZES) == {"10M keys, 20,000/s", "100M keys, 200,000/s", "1B keys, 1,000,000/s"}
    small = replace(SMALL, name="tiny", seconds=2, restarts=())
    SIZES["tiny"] = small
    try:
        assert main(["--size", "tiny"]) == 0
    finally:
        del SIZES["tiny"]
    assert '"scenario": "tiny"' in capsys.readouterr().out
