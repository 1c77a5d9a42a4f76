"""Two real replicas on PostgreSQL and Redis, driven with the simulation's own traffic.

The check of ``benchmarks/capacity_sim.py``: the same requests (moments, keys
and replica choices drawn from the same seed), the same cache size and TTL,
the same restart of one replica, against two ``keyplane serve`` processes on
loopback. The real side reports hit rate and database reads from each
replica's ``/metrics``, and revocation lag measured end to end (delete on one
replica, poll ``/auth/verify`` on the other until it refuses). The simulation
then runs the scenario with the restart's measured downtime, and both are
printed side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tests.servers import free_port

from benchmarks.capacity_sim import Scenario, draw_keys, simulate
from benchmarks.seed import Plan, key_id, seed, seeded_token
from benchmarks.servers import BIN, UNLIMITED, Backends, Process, _wait_ready, spawn

SCENARIO = Scenario(
    "two real replicas",
    keys=20_000,
    customers=200,
    rate=60,  # what a loaded 2-core machine sustains beside both replicas
    replicas=2,
    seconds=60,
    cache_entries=1_000,
    ttl=15,
    revocations_per_second=0.2,
    restarts=((30.0, 1, 3.0),),  # the length is replaced by the measured one
    window=5,
)
IN_FLIGHT = 16
_COUNTER = re.compile(r'^keyplane_verification_cache_total\{result="(hit|miss)"\} (\S+)$', re.M)
_LOG_LAG = re.compile(r"^keyplane_revocation_lag_seconds_(sum|count) (\S+)$", re.M)


def _cache_counts(url: str) -> tuple[float, float]:
    text = httpx.get(url + "/metrics", timeout=5).text
    found = dict((kind, float(value)) for kind, value in _COUNTER.findall(text))
    return found.get("hit", 0.0), found.get("miss", 0.0)


async def _log_lag(client: httpx.AsyncClient) -> tuple[float, float]:
    """The revocation log's lag histogram on one replica: (sum of seconds, count)."""
    found = dict(_LOG_LAG.findall((await client.get("/metrics")).text))
    return float(found.get("sum", 0.0)), float(found.get("count", 0.0))


class Replicas:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.ports = [free_port(), free_port()]
        self.processes: list[Process | None] = [None, None]
        self.counted = [(0.0, 0.0), (0.0, 0.0)]  # from processes that ended

    def url(self, replica: int) -> str:
        return f"http://127.0.0.1:{self.ports[replica]}"

    def start(self, replica: int, generation: int = 0) -> None:
        env = dict(self.env, KEYPLANE_DATA_DIR=str(self.root))
        port = self.ports[replica]
        command = [str(BIN / "keyplane"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = spawn(f"replica-{replica}-{generation}", command, self.root, env, port)
        self.processes[replica] = process
        _wait_ready(process, "/health/ready")

    def stop(self, replica: int) -> None:
        process = self.processes[replica]
        if process is None:
            return
        with contextlib.suppress(httpx.HTTPError):
            hit, miss = _cache_counts(self.url(replica))
            old = self.counted[replica]
            self.counted[replica] = (old[0] + hit, old[1] + miss)
        process.stop()
        self.processes[replica] = None

    def totals(self) -> tuple[float, float]:
        hits = misses = 0.0
        for replica in (0, 1):
            hit, miss = self.counted[replica]
            if self.processes[replica] is not None:
                now_hit, now_miss = _cache_counts(self.url(replica))
                hit, miss = hit + now_hit, miss + now_miss
            hits, misses = hits + hit, misses + miss
        return hits, misses


async def _drive(replicas: Replicas, scenario: Scenario) -> dict[str, Any]:
    rng = np.random.default_rng(scenario.seed)  # the simulation's draws, in its order
    count = int(scenario.rate * scenario.seconds)
    moments = np.sort(rng.random(count) * scenario.seconds).tolist()
    keys = draw_keys(scenario, rng, count).tolist()
    balance = rng.integers(0, 2, count).tolist()
    per_customer = scenario.keys // scenario.customers
    # Few requests in flight: a late request waits here, not in httpx's pool (whose
    # queue costs quadratic time when thousands wait).
    in_flight = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    clients = [
        httpx.AsyncClient(base_url=replicas.url(r), timeout=10, limits=limits) for r in (0, 1)
    ]
    # The revocations' own connections, so that a poll never queues behind the traffic.
    probes = [httpx.AsyncClient(base_url=replicas.url(r), timeout=10) for r in (0, 1)]
    answers: dict[str, int] = {}
    lags: list[float] = []
    log_lags: list[float] = []  # when replica 1's revocation-log follower applied each
    by_pubsub = 0  # refused before the log's follower applied it: pub/sub came first
    request_ms: list[float] = []
    restart_at, restarted, _ = scenario.restarts[0]
    downtime = 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def verify(index: int) -> None:
        target = balance[index]
        headers = {"Authorization": "Bearer " + seeded_token(keys[index])}
        async with in_flight:
            for replica in (target, 1 - target):  # the balancer's retry on the other replica
                try:
                    answer = await clients[replica].get("/auth/verify", headers=headers)
                except httpx.TransportError:
                    continue
                answers[str(answer.status_code)] = answers.get(str(answer.status_code), 0) + 1
                return
            answers["unreachable"] = answers.get("unreachable", 0) + 1

    async def restart() -> None:
        nonlocal downtime
        await asyncio.sleep(max(0.0, restart_at - (loop.time() - started)))
        down = time.monotonic()
        await asyncio.to_thread(replicas.stop, restarted)
        await asyncio.to_thread(replicas.start, restarted, 1)
        downtime = time.monotonic() - down

    async def revoke(number: int) -> None:
        """Delete a rarely used key on replica 0; time until replica 1 refuses it, and
        whether pub/sub or the revocation log told replica 1 first."""
        nonlocal by_pubsub
        await asyncio.sleep(2.0 + number / scenario.revocations_per_second)
        customer = number % scenario.customers
        victim = customer + (per_customer - 1 - number // scenario.customers) * scenario.customers
        actor = customer  # the customer's most used key acts for it
        token = {"Authorization": "Bearer " + seeded_token(victim)}
        if replicas.processes[1] is None:
            return
        with contextlib.suppress(httpx.TransportError):
            probe = time.perf_counter()
            await probes[1].get("/auth/verify", headers=token)  # cached on replica 1
            # One request's own time on this machine, now: the lag holds at least one.
            request_ms.append((time.perf_counter() - probe) * 1000)
            log_sum, log_count = await _log_lag(probes[1])
            answer = await probes[0].delete(
                f"/v1.0/accesskeys/{key_id(victim)}",
                headers={"Authorization": "Bearer " + seeded_token(actor)},
            )
            committed = time.perf_counter()
            if answer.status_code != 200:
                answers[f"delete {answer.status_code}"] = 1
                return
            # Polling is the measurement: the first refusal ends it.
            while (await probes[1].get("/auth/verify", headers=token)).status_code == 200:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            lag = (time.perf_counter() - committed) * 1000
            lags.append(lag)
            # The follower reads the log every 0.25 s; its histogram has this one's lag
            # once it has (one revocation at a time: 5 s apart).
            for _ in range(100):
                new_sum, new_count = await _log_lag(probes[1])
                if new_count > log_count:
                    log_lag = (new_sum - log_sum) * 1000
                    log_lags.append(log_lag)
                    by_pubsub += lag < log_lag
                    break
                await asyncio.sleep(0.05)

    revocations = int(scenario.seconds * scenario.revocations_per_second) - 1
    background = [asyncio.create_task(restart())]
    background += [asyncio.create_task(revoke(n)) for n in range(revocations)]
    pending: set[asyncio.Task[None]] = set()
    for index, moment in enumerate(moments):
        delay = moment - (loop.time() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(verify(index))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending, *background)
    elapsed = loop.time() - started
    for client in clients + probes:
        await client.aclose()
    return {
        "answers": answers,
        "elapsed_s": round(elapsed, 1),
        "sent_per_second": round(count / elapsed, 1),
        "downtime_s": round(downtime, 2),
        "revocation_lag_ms": {
            "p50": round(statistics.median(lags), 2) if lags else None,
            "max": round(max(lags), 2) if lags else None,
            "count": len(lags),
            # The lag includes the refused request itself: its p50 time on the replica.
            "one_request_p50": round(statistics.median(request_ms), 2) if request_ms else None,
            # How replica 1 heard of each: refused before its log follower applied it.
            "by_pubsub": by_pubsub,
            "log_p50": round(statistics.median(log_lags), 2) if log_lags else None,
            "log_max": round(max(log_lags), 2) if log_lags else None,
        },
    }


def compare(scenario: Scenario = SCENARIO) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="keyplane-capacity-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        backends = Backends.start()
        try:
            url = backends.database("capacity")
            env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
            env.update(
                KEYPLANE_DATABASE_URL=url,
                KEYPLANE_REDIS_URL=backends.redis.url,
                KEYPLANE_JWT_SECRET="capacity-" + "s" * 40,
                KEYPLANE_BOOTSTRAP="false",
                KEYPLANE_LOG_FORMAT="json",
                KEYPLANE_LOG_LEVEL="WARNING",
                KEYPLANE_CACHE_MAX_ENTRIES=str(scenario.cache_entries),
                KEYPLANE_CACHE_TTL=str(scenario.ttl),
                PYTHONUNBUFFERED="1",
                **UNLIMITED,
            )
            replicas = Replicas(root, env)
            try:
                replicas.start(0)  # migrates
                plan = Plan(scenario.customers + 1, scenario.keys, big=0)
                asyncio.run(seed(url, plan))
                replicas.start(1)
                real = asyncio.run(_drive(replicas, scenario))
                hits, misses = replicas.totals()
            finally:
                replicas.stop(0)
                replicas.stop(1)
        finally:
            backends.destroy()
    real["hit_rate"] = round(hits / max(hits + misses, 1), 4)
    real["db_reads_per_second"] = round(misses / real["elapsed_s"], 1)
    at, replica, _ = scenario.restarts[0]
    simulated = simulate(replace(scenario, restarts=((at, replica, real["downtime_s"]),)))
    return {
        "scenario": asdict(scenario),
        "real": real,
        "simulated": {
            "hit_rate": round(simulated.hit_rate, 4),
            "hit_rate_by_window": simulated.hit_rate_by_window,
            "db_reads_per_second": round(simulated.db_reads_per_second, 1),
            "revocation_lag_ms": simulated.revocation_lag_ms,
        },
    }
