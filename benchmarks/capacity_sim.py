"""A capacity simulation of keyplane replicas, fed with measured figures.

    python -m benchmarks.capacity_sim                  # the three sizes of docs/capacity.md
    python -m benchmarks.capacity_sim --compare-real   # against two real replicas, here

Verification traffic is drawn with a skew (a few customers send most requests:
Zipf over customers, and over each customer's keys), spread at random over
the replicas; every replica has the real ``VerificationCache`` (LRU, size
bound, TTL) on a simulated clock. Revocations arrive at random; each reaches
a replica by Redis pub/sub (the measured delay) or, when the message is lost,
by the replica's next read of the revocation log (every 0.25 s). Replicas
restart at given moments and come back with an empty cache.

It reports the cache hit rate (also per window, to show a restart's dip),
database reads and writes per second, Redis messages, revocation lag, and
the cores and cache memory the traffic needs. Only a few replicas are
simulated request by request (``Scenario.simulated``); replicas are
symmetric behind a random balancer, so the others are counted, not run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from keyplane.cache.verification import MISS, VerificationCache, VerifiedKey

LOG_POLL_SECONDS = 0.25  # services/revocations.py POLL_SECONDS
LAST_USED_INTERVAL = 60.0  # KEYPLANE_LAST_USED_FLUSH_INTERVAL
LIMITER_BATCH = 100  # requests per Redis round trip of the customer limit (5% of 2,000)


@dataclass(frozen=True)
class Measured:
    """Per-unit costs from ``make bench`` (docs/capacity.md), one of them assumed."""

    hit_cpu_us: float = 140.0  # one cached /auth/verify, HTTP included (F10: 7,000/s a worker)
    miss_cpu_us: float = 1_000.0  # the extra CPU of a miss, database client included (F3)
    miss_db_ms: float = 1.5  # wall time of one miss's database work on PostgreSQL (F4 p50)
    # Commit to eviction on another replica by Redis: assumed (a round trip and a
    # loop turn); the two-replica run on a loaded machine saw far more end to end.
    pubsub_lag_ms: float = 3.0
    log_read_ms: float = 2.0  # one read of the revocation log
    bytes_per_entry: float = 650.0  # S6


@dataclass(frozen=True)
class Scenario:
    name: str
    keys: int
    customers: int
    rate: float  # verifications per second, all replicas
    replicas: int
    seconds: float
    cache_entries: int = 100_000
    ttl: float = 60.0
    customer_skew: float = 1.2  # Zipf exponent over customers
    key_skew: float = 1.2  # Zipf exponent over a customer's keys
    revocations_per_second: float = 1.0
    redis_loss: float = 0.0  # share of invalidation messages lost
    restarts: tuple[tuple[float, int, float], ...] = ()  # (at, replica, seconds down)
    simulated: int = 2  # replicas run request by request
    window: float = 10.0
    warmup: float = 0.0  # seconds left out of the steady-state figures
    seed: int = 15


@dataclass
class Report:
    scenario: str
    hit_rate: float
    hit_rate_by_window: list[float]
    db_reads_per_second: float
    db_read_seconds_per_second: float  # database busy time, all replicas
    last_used_rows_per_second: float
    log_reads_per_second: float
    redis_messages_per_revocation: int
    redis_messages_per_second: float
    revocation_lag_ms: dict[str, float]
    cores: float
    cache_entries_per_replica: int
    cache_mib_per_replica: float
    measured: dict[str, float] = field(default_factory=dict)


def _zipf_ranks(rng: np.random.Generator, n: int, skew: float, size: int) -> np.ndarray:
    """Ranks 0..n-1 with P(rank r) about proportional to 1/(r+1)^skew (inverse of the CDF
    of the continuous approximation: exact enough, and cheap for a billion keys)."""
    u = rng.random(size)
    if abs(skew - 1.0) < 1e-9:
        ranks = np.exp(u * math.log(n + 1)) - 1
    else:
        a = 1.0 - skew
        ranks = ((1 + u * ((n + 1) ** a - 1)) ** (1 / a)) - 1
    return np.minimum(ranks.astype(np.int64), n - 1)


def draw_keys(scenario: Scenario, rng: np.random.Generator, size: int) -> np.ndarray:
    """Key numbers: customer rank c, key rank j of that customer -> c + j * customers."""
    per_customer = max(1, scenario.keys // scenario.customers)
    customer = _zipf_ranks(rng, scenario.customers, scenario.customer_skew, size)
    key = _zipf_ranks(rng, per_customer, scenario.key_skew, size)
    return customer + key * scenario.customers


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _windows(seconds: float, width: float) -> Iterator[float]:
    edge = width
    while edge < seconds + width:
        yield edge
        edge += width


def simulate(scenario: Scenario, measured: Measured | None = None) -> Report:
    measured = measured or Measured()
    rng = np.random.default_rng(scenario.seed)
    simulated = min(scenario.simulated, scenario.replicas)
    share = scenario.rate * simulated / scenario.replicas  # requests/s the simulated ones see
    count = int(share * scenario.seconds)
    moments = np.sort(rng.random(count) * scenario.seconds)
    keys = draw_keys(scenario, rng, count)
    balance = rng.integers(0, simulated, count)
    clock = _Clock()
    caches = [
        VerificationCache(max_entries=scenario.cache_entries, ttl=scenario.ttl, monotonic=clock)
        for _ in range(simulated)
    ]
    for cache in caches:
        cache.set_connected(True)
    down = [(at, at + length, replica) for at, replica, length in scenario.restarts]
    restarted = [False] * len(down)
    # What a hit returns does not matter here, only whether there is one.
    entry = VerifiedKey(uuid.UUID(int=0), uuid.UUID(int=0), datetime.max.replace(tzinfo=UTC))
    hits = misses = 0
    steady_hits = steady_misses = 0
    by_window: list[list[int]] = [[0, 0] for _ in _windows(scenario.seconds, scenario.window)]
    used: list[set[int]] = [set() for _ in range(simulated)]
    flushed_rows = 0
    next_flush = LAST_USED_INTERVAL
    for moment, key, target in zip(moments.tolist(), keys.tolist(), balance.tolist(), strict=True):
        clock.now = moment
        while moment >= next_flush:
            flushed_rows += sum(len(u) for u in used)
            used = [set() for _ in range(simulated)]
            next_flush += LAST_USED_INTERVAL
        for index, (start, _end, replica) in enumerate(down):
            if replica < simulated and start <= moment and not restarted[index]:
                caches[replica].clear()  # the process ends; its cache with it
                restarted[index] = True
        up = [
            r
            for r in range(simulated)
            if not any(s <= moment < e and r == rep for s, e, rep in down)
        ]
        replica = target if target in up else (up[target % len(up)] if up else target)
        cache = caches[replica]
        token_hash = key  # any hashable stands for the key's hash
        hit = cache.get_key(token_hash) is not MISS  # type: ignore[arg-type]
        window = by_window[min(int(moment / scenario.window), len(by_window) - 1)]
        if hit:
            hits += 1
            window[0] += 1
        else:
            misses += 1
            window[1] += 1
            cache.put_key(token_hash, entry, cache.generation)  # type: ignore[arg-type]
        if moment >= scenario.warmup:
            steady_hits += hit
            steady_misses += not hit
        used[replica].add(key)
    flushed_rows += sum(len(u) for u in used)
    steady = max(steady_hits + steady_misses, 1)
    steady_seconds = max(scenario.seconds - scenario.warmup, 1e-9)
    scale = scenario.replicas / simulated
    miss_rate = steady_misses / steady_seconds * scale
    lags = _revocation_lags(scenario, measured, rng)
    revocations = scenario.revocations_per_second
    cores = scenario.rate * measured.hit_cpu_us / 1e6 + miss_rate * measured.miss_cpu_us / 1e6
    entries = max(len(cache) for cache in caches)
    return Report(
        scenario=scenario.name,
        hit_rate=steady_hits / steady,
        hit_rate_by_window=[round(h / max(h + m, 1), 4) for h, m in by_window],
        db_reads_per_second=miss_rate,
        db_read_seconds_per_second=miss_rate * measured.miss_db_ms / 1000,
        last_used_rows_per_second=flushed_rows * scale / scenario.seconds,
        log_reads_per_second=scenario.replicas / LOG_POLL_SECONDS,
        redis_messages_per_revocation=1 + scenario.replicas,
        redis_messages_per_second=(
            revocations * (1 + scenario.replicas) + scenario.rate / LIMITER_BATCH
        ),
        revocation_lag_ms=lags,
        cores=cores,
        cache_entries_per_replica=entries,
        cache_mib_per_replica=entries * measured.bytes_per_entry / 2**20,
        measured=asdict(measured),
    )


def _revocation_lags(
    scenario: Scenario, measured: Measured, rng: np.random.Generator
) -> dict[str, float]:
    """Commit to eviction, per revocation and replica that is up (ms)."""
    count = max(1, int(scenario.revocations_per_second * scenario.seconds))
    moments = rng.random(count) * scenario.seconds
    phases = rng.random(scenario.replicas) * LOG_POLL_SECONDS
    lags: list[float] = []
    for moment in moments.tolist():
        for replica in range(scenario.replicas):
            if any(
                rep == replica and at <= moment < at + length
                for at, rep, length in scenario.restarts
            ):
                continue  # it comes back with an empty cache: nothing to evict
            if rng.random() >= scenario.redis_loss:
                lags.append(rng.exponential(measured.pubsub_lag_ms))
            else:  # the next read of the log, wherever its poll cycle is
                wait = (phases[replica] - moment) % LOG_POLL_SECONDS
                lags.append(wait * 1000 + measured.log_read_ms)
    ordered = sorted(lags)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "max": round(ordered[-1], 2),
    }


# The three deployment sizes of docs/capacity.md. A "replica" here is one
# worker process: each has its own cache (a replica of `--workers 4` is four).
# Two of them are simulated over two and a half minutes of their share of the
# traffic; the figures leave out the first minute (the caches filling).
SIZES = {
    "10M keys, 20,000/s": Scenario(
        "10M keys, 20,000/s",
        keys=10_000_000,
        customers=10_000,
        rate=20_000,
        replicas=8,  # 4 replicas x 2 workers
        seconds=150,
        warmup=60,
        revocations_per_second=5,
        restarts=((100.0, 1, 5.0),),
    ),
    "100M keys, 200,000/s": Scenario(
        "100M keys, 200,000/s",
        keys=100_000_000,
        customers=100_000,
        rate=200_000,
        replicas=64,  # 16 replicas x 4 workers
        seconds=150,
        warmup=60,
        revocations_per_second=50,
        restarts=((100.0, 1, 5.0),),
    ),
    "1B keys, 1,000,000/s": Scenario(
        "1B keys, 1,000,000/s",
        keys=1_000_000_000,
        customers=1_000_000,
        rate=1_000_000,
        replicas=320,  # 80 replicas x 4 workers
        seconds=150,
        warmup=60,
        revocations_per_second=250,
        restarts=((100.0, 1, 5.0),),
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity_sim", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), action="append")
    parser.add_argument(
        "--compare-real", action="store_true", help="run two real replicas here and compare"
    )
    args = parser.parse_args(argv)
    if args.compare_real:
        from benchmarks.capacity_real import compare

        print(json.dumps(compare(), indent=1))
        return 0
    for name in args.size or list(SIZES):
        print(json.dumps(asdict(simulate(SIZES[name])), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
