"""The figures F1..F10, each a ratio measured side by side in one run.

Every ratio alternates its two sides over several rounds (A then B, then B
then A, ...) so that drift and the neighbours' load fall on both; the median
and the spread (lowest, highest) of the per-round ratios are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import load
from benchmarks.servers import (
    Backends,
    Keyplane,
    Process,
    children,
    seed_keys,
    seeded_token,
    start_baseline,
    start_keyplane,
)


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: float  # per wrk run
    rounds: int
    connections: int
    keys_small: int
    keys_large: int
    cached_keys: int
    steady_seconds: float  # F8's steady load
    latency_samples: int  # F4
    rotation: int = 1000  # distinct tokens a rotating client cycles through
    # S1..S6 (benchmarks/scale.py): the seeded database, customer 0 holding
    # scale_big keys, and the verification cache of S5/S6.
    scale_customers: int = 1_001
    scale_keys: int = 1_000_000
    scale_big: int = 100_000
    scale_deleted: int = 50_000
    scale_samples: int = 50  # requests per side and round for one page's latency
    cache_entries: int = 100_000


MODES = {
    "full": Mode("full", 5.0, 3, 32, 1_000, 1_000_000, 100_000, 300.0, 20_000),
    "quick": Mode(
        "quick",
        *(1.0, 2, 32, 1_000, 10_000, 5_000, 3.0, 2_000),
        scale_customers=31,
        scale_keys=30_000,
        scale_big=10_000,
        scale_deleted=5_000,
        scale_samples=30,
    ),
    # The test's mode: the same code path, as short as it can be.
    "smoke": Mode(
        "smoke",
        *(1.0, 1, 4, 20, 60, 50, 1.0, 50),
        rotation=10,
        scale_customers=5,
        scale_keys=800,
        scale_big=400,
        scale_deleted=200,
        scale_samples=3,
        cache_entries=5_000,
    ),
}


@dataclass
class Figure:
    id: str
    title: str
    unit: str  # "ratio", "ms", "%", "s", "MiB", "bytes"
    target: float | None  # None: reported, no target
    higher_is_better: bool
    value: float | None = None
    spread: tuple[float, float] | None = None
    sides: dict[str, list[float]] | None = None
    details: dict[str, Any] | None = None
    note: str = ""
    sides_unit: str = "requests/s"

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "target": self.target,
            "target_op": "" if self.target is None else ">=" if self.higher_is_better else "<=",
            "value": None if self.value is None else round(self.value, 4),
            "spread": None if self.spread is None else [round(v, 4) for v in self.spread],
            "met": self.met,
            "sides": self.sides,
            "details": self.details or {},
            "note": self.note,
            "sides_unit": self.sides_unit,
        }


Run = Callable[[], load.Outcome]


class Bench:
    def __init__(self, mode: Mode, root: Path, log: Callable[[str], None]) -> None:
        self.mode = mode
        self.root = root
        self.log = log
        self.stack = contextlib.ExitStack()
        self._backends: Backends | None = None

    # Servers --------------------------------------------------------------

    def _own(self, process: Process) -> None:
        self.stack.callback(process.stop)

    def keyplane(self, name: str, **options: Any) -> Keyplane:
        self.log(f"  starting {name}")
        server = start_keyplane(name, self.root, **options)
        self._own(server.process)
        return server

    def baseline(self, name: str, app: str) -> Process:
        self.log(f"  starting {name}")
        process = start_baseline(name, app, self.root)
        self._own(process)
        return process

    @property
    def backends(self) -> Backends:
        if self._backends is None:
            self.log("  starting PostgreSQL and Redis")
            self._backends = Backends.start()
            self.stack.callback(self._backends.destroy)
        return self._backends

    # Load -----------------------------------------------------------------

    def wrk(
        self,
        url: str,
        *,
        connections: int | None = None,
        threads: int = 1,
        headers: dict[str, str] | None = None,
        script: str | None = None,
        env: dict[str, str] | None = None,
        seconds: float | None = None,
    ) -> Run:
        command = load.wrk_command(
            url,
            seconds=seconds or self.mode.seconds,
            connections=connections or self.mode.connections,
            threads=threads,
            headers=headers,
            script=self._script(script) if script else None,
        )
        return lambda: load.run(command, env)

    def _script(self, text: str) -> Path:
        path = self.root / f"script-{abs(hash(text))}.lua"
        path.write_text(text)
        return path

    def tokens_file(self, count: int, *, name: str) -> Path:
        """``rotation`` seeded tokens spread evenly over the first ``count``."""
        path = self.root / f"tokens-{name}.txt"
        step = max(1, count // self.mode.rotation)
        path.write_text("\n".join(seeded_token(i) for i in range(0, count, step)) + "\n")
        return path

    def ratio(
        self, a: Run, b: Run, *, a_name: str, b_name: str
    ) -> tuple[float, tuple[float, float], dict[str, list[float]], int]:
        """Median and spread of a ÷ b over alternating rounds; also the unexpected answers."""
        ratios: list[float] = []
        sides: dict[str, list[float]] = {a_name: [], b_name: []}
        unexpected = 0
        for round_ in range(self.mode.rounds):
            order = [(a_name, a), (b_name, b)]
            if round_ % 2:
                order.reverse()
            got: dict[str, load.Outcome] = {}
            for name, run in order:
                got[name] = run()
                unexpected += got[name].non_2xx + got[name].socket_errors
            sides[a_name].append(got[a_name].rps)
            sides[b_name].append(got[b_name].rps)
            ratios.append(got[a_name].rps / max(got[b_name].rps, 1e-9))
        return statistics.median(ratios), (min(ratios), max(ratios)), sides, unexpected


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ratio_figure(
    bench: Bench, id_: str, title: str, target: float, a: Run, b: Run, a_name: str, b_name: str
) -> Figure:
    bench.log(f"{id_}: {title}")
    value, spread, sides, unexpected = bench.ratio(a, b, a_name=a_name, b_name=b_name)
    figure = Figure(id_, title, "ratio", target, True, value, spread, sides)
    figure.details = {"unexpected_answers": unexpected}
    if unexpected:
        figure.note = f"{unexpected} answers were not 2xx or failed: the figure is suspect."
    bench.log(f"  {value:.3f} (spread {spread[0]:.3f}..{spread[1]:.3f}); target >= {target}")
    return figure


def first_key_id(server: Keyplane) -> str:
    answer = httpx.get(
        f"{server.url}/v1.0/accesskeys?page_size=1", headers=_bearer(server.token), timeout=10
    )
    answer.raise_for_status()
    key_id: str = answer.json()["result"][0]["id"]
    return key_id


def _with_background(
    bench: Bench, measured: Run, background: list[str], env: dict[str, str]
) -> Run:
    def run() -> load.Outcome:
        other = load.Background(background, env)
        time.sleep(min(0.5, bench.mode.seconds / 3))
        try:
            return measured()
        finally:
            other.finish()

    return run


async def _latencies(database_url: str, tokens: list[str], samples: int) -> list[float]:
    """Seconds per database-backed verification, in process, cache disabled."""
    from keyplane.services.auth import Credential
    from keyplane.services.container import build_services
    from keyplane.settings import Settings

    settings = Settings(
        database_url=database_url,
        jwt_secret="b" * 32,
        cache_max_entries=0,
        ratelimit_customer_per_second=1e9,
        ratelimit_customer_burst=10**9,
        _env_file=None,  # type: ignore[call-arg]
    )
    services = build_services(settings)
    took: list[float] = []
    try:
        credentials = [Credential("accesskey", token, "header") for token in tokens]
        for i in range(min(samples, 200)):  # warm the pool and the statement cache
            await services.auth.authenticate(credentials[i % len(credentials)], client="127.0.0.1")
        for i in range(samples):
            credential = credentials[i % len(credentials)]
            started = time.perf_counter()
            await services.auth.authenticate(credential, client="127.0.0.1")
            took.append(time.perf_counter() - started)
    finally:
        await services.close()
    return took


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def run_figures(bench: Bench) -> list[Figure]:
    mode = bench.mode
    figures: list[Figure] = []
    bare = bench.baseline("bare-asgi", "bare")
    minimal = bench.baseline("minimal-fastapi", "minimal")
    sqlite = bench.keyplane("keyplane-sqlite")
    verify = f"{sqlite.url}/auth/verify"
    verify_sqlite = bench.wrk(verify, headers=_bearer(sqlite.token))

    figures.append(
        _ratio_figure(
            bench,
            "F1",
            "GET /auth/verify (cache hit) ÷ bare ASGI 200",
            0.6,
            verify_sqlite,
            bench.wrk(f"{bare.url}/"),
            "keyplane /auth/verify",
            "bare ASGI",
        )
    )
    key_id = first_key_id(sqlite)
    figures.append(
        _ratio_figure(
            bench,
            "F2",
            "authenticated GET /v1.0/accesskeys/{id} ÷ minimal FastAPI JSON route",
            0.8,
            bench.wrk(f"{sqlite.url}/v1.0/accesskeys/{key_id}", headers=_bearer(sqlite.token)),
            bench.wrk(f"{minimal.url}/item"),
            "keyplane GET /v1.0/accesskeys/{id}",
            "minimal FastAPI",
        )
    )

    # F3 and F4: cache disabled, small and large key tables.
    nocache = {"KEYPLANE_CACHE_MAX_ENTRIES": "0"}
    databases: dict[str, dict[str, Keyplane]] = {"sqlite": {}, "postgresql": {}}
    for size, count in (("small", mode.keys_small), ("large", mode.keys_large)):
        server = bench.keyplane(f"keyplane-sqlite-nocache-{size}", extra=nocache)
        bench.log(f"  seeding {count} keys (SQLite)")
        seed_keys(server, count)
        databases["sqlite"][size] = server
        url = bench.backends.database(f"bench_{size}")
        server = bench.keyplane(f"keyplane-pg-nocache-{size}", database_url=url, extra=nocache)
        bench.log(f"  seeding {count} keys (PostgreSQL)")
        seed_keys(server, count)
        databases["postgresql"][size] = server
    for engine, servers in databases.items():
        runs = []
        for size, count in (("large", mode.keys_large), ("small", mode.keys_small)):
            tokens = bench.tokens_file(count, name=f"{engine}-{size}")
            runs.append(
                bench.wrk(
                    f"{servers[size].url}/auth/verify",
                    script=load.ROTATE_TOKENS,
                    env={"BENCH_TOKENS": str(tokens)},
                )
            )
        figure = _ratio_figure(
            bench,
            f"F3 {engine}",
            f"verification, cache disabled, {mode.keys_large:,} keys ÷ {mode.keys_small:,} keys "
            f"({engine})",
            0.9,
            runs[0],
            runs[1],
            f"{mode.keys_large} keys",
            f"{mode.keys_small} keys",
        )
        figures.append(figure)
    for engine, servers in databases.items():
        bench.log(f"F4 {engine}: in-process latency of a database-backed verification")
        tokens = bench.tokens_file(mode.keys_large, name=f"latency-{engine}")
        took = asyncio.run(
            _latencies(
                servers["large"].database_url,
                tokens.read_text().split(),
                mode.latency_samples,
            )
        )
        p50, p99 = _percentile(took, 0.5) * 1000, _percentile(took, 0.99) * 1000
        target = 1.0 if engine == "sqlite" else 2.0
        figures.append(
            Figure(
                f"F4 {engine}",
                f"p99 latency of a database-backed verification (cache miss), in process, "
                f"{mode.keys_large:,} keys ({engine})",
                "ms",
                target,
                False,
                p99,
                None,
                None,
                {"p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "samples": len(took)},
            )
        )
        bench.log(f"  p50 {p50:.3f} ms, p99 {p99:.3f} ms; target <= {target}")
    for server in [*databases["sqlite"].values(), *databases["postgresql"].values()]:
        server.process.stop()

    # F5: a flood of unknown well-formed keys from other addresses.
    valid_connections = max(1, mode.connections // 8)
    valid = bench.wrk(verify, connections=valid_connections, headers=_bearer(sqlite.token))
    attack = load.wrk_command(
        verify,
        seconds=mode.seconds + 1,
        connections=valid_connections * 10,
        script=bench._script(load.UNKNOWN_KEYS),
    )
    figures.append(
        _ratio_figure(
            bench,
            "F5",
            "valid-key verification under 10x unknown keys from other addresses ÷ alone",
            0.7,
            _with_background(bench, valid, attack, {"BENCH_SEED": "7"}),
            valid,
            "under attack",
            "alone",
        )
    )

    # F6: 50 clients logging in continuously (argon2id).
    login_body = json.dumps({"username": sqlite.username, "password": sqlite.password})
    logins = load.wrk_command(
        f"{sqlite.url}/auth/login",
        seconds=mode.seconds + 1,
        connections=50,
        script=bench._script(load.LOGIN),
    )
    figures.append(
        _ratio_figure(
            bench,
            "F6",
            "verification while 50 clients log in continuously ÷ alone",
            0.7,
            _with_background(bench, verify_sqlite, logins, {"BENCH_LOGIN_BODY": login_body}),
            verify_sqlite,
            "with logins",
            "alone",
        )
    )

    figures.append(django_figure(bench, verify_sqlite, sqlite, key_id))
    figures.append(memory_figure(bench))

    # F9: two workers ÷ one, both driven by two wrk threads.
    two = bench.keyplane("keyplane-sqlite-2-workers", workers=2)
    f9 = _ratio_figure(
        bench,
        "F9",
        "/auth/verify, two workers ÷ one worker",
        1.7,
        bench.wrk(f"{two.url}/auth/verify", threads=2, headers=_bearer(two.token)),
        bench.wrk(verify, threads=2, headers=_bearer(sqlite.token)),
        "two workers",
        "one worker",
    )
    f9.details = {
        **(f9.details or {}),
        "cores_used": {
            "two workers": cores_used(bench, two),
            "one worker": cores_used(bench, sqlite),
        },
    }
    figures.append(f9)
    two.process.stop()

    backends = bench.backends
    pg = bench.keyplane(
        "keyplane-pg-redis",
        database_url=backends.database("bench_main"),
        redis_url=backends.redis.url,
    )
    figures.append(
        _ratio_figure(
            bench,
            "F10",
            "/auth/verify on PostgreSQL + Redis ÷ on SQLite, both cache hits",
            0.9,
            bench.wrk(f"{pg.url}/auth/verify", headers=_bearer(pg.token)),
            verify_sqlite,
            "PostgreSQL + Redis",
            "SQLite",
        )
    )
    return figures


def _is_spawned_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def cores_used(bench: Bench, server: Keyplane) -> dict[str, float | list[float]]:
    """One more F9 run, with the cores that each part of the machine used meanwhile.

    ``workers`` lists each worker process; ``supervisor`` is the parent that
    starts them, with multiprocessing's resource tracker (with one worker, the
    server's single process is the worker).
    """
    parent = server.process.process.pid
    spawned = children(parent)
    workers = [pid for pid in spawned if _is_spawned_worker(pid)] or [parent]
    groups = {f"worker {n}": [pid] for n, pid in enumerate(workers, 1)}
    if workers != [parent]:
        groups["supervisor"] = [parent, *(pid for pid in spawned if pid not in workers)]
    command = load.wrk_command(
        f"{server.url}/auth/verify",
        seconds=bench.mode.seconds,
        connections=bench.mode.connections,
        threads=2,
        headers=_bearer(server.token),
    )
    outcome, shares = load.run_with_cpu(command, groups)
    used: dict[str, float | list[float]] = {
        "requests_per_second": round(outcome.rps),
        "workers": [shares.pop(f"worker {n}") for n in range(1, len(workers) + 1)],
    }
    used.update(shares)
    return used


def django_figure(bench: Bench, verify_sqlite: Run, sqlite: Keyplane, key_id: str) -> Figure:
    from benchmarks import django_baseline

    title = "keyplane ÷ djangorestframework-api-key HasAPIKey (gunicorn, 1 sync worker)"
    try:
        django = django_baseline.start(
            bench.root, keys=bench.mode.keys_small, build=bench.mode.name != "smoke"
        )
    except django_baseline.Unavailable as exc:
        bench.log(f"F7: not measured ({exc})")
        return Figure("F7", title, "ratio", 20.0, True, note=f"not measured: {exc}")
    bench.stack.callback(django.stop)
    django_run = bench.wrk(
        f"{django.url}/protected/", headers={"Authorization": f"Api-Key {django.key}"}
    )
    figure = _ratio_figure(
        bench, "F7", title + ", /auth/verify", 20.0, verify_sqlite, django_run, "keyplane", "DRF"
    )
    read = _ratio_figure(
        bench,
        "F7 read",
        title + ", authenticated API read",
        5.0,
        bench.wrk(f"{sqlite.url}/v1.0/accesskeys/{key_id}", headers=_bearer(sqlite.token)),
        django_run,
        "keyplane",
        "DRF",
    )
    figure.details = {**(figure.details or {}), "read": read.as_json()}
    return figure


WARM_UP_RUNS = 100
_CACHE_ENTRIES = re.compile(r"^keyplane_verification_cache_entries (\S+)$", re.MULTILINE)


def cache_entries(server: Keyplane) -> int:
    """The entries of the server's verification cache, by its ``/metrics``."""
    found = _CACHE_ENTRIES.search(httpx.get(f"{server.url}/metrics", timeout=10).text)
    if found is None:
        raise RuntimeError("no keyplane_verification_cache_entries in /metrics")
    return int(float(found[1]))


def memory_figure(bench: Bench) -> Figure:
    """F8: resident memory holding ``cached_keys`` keys, and its growth under steady load."""
    mode = bench.mode
    bench.log(f"F8: resident memory with {mode.cached_keys:,} cached keys")
    server = bench.keyplane(
        "keyplane-cached",
        redis_url=bench.backends.redis.url,
        extra={
            "KEYPLANE_CACHE_MAX_ENTRIES": str(mode.cached_keys * 2),
            "KEYPLANE_CACHE_TTL": str(max(600, mode.steady_seconds * 2)),
        },
    )
    seed_keys(server, mode.cached_keys)
    tokens = bench.root / "tokens-cached.txt"
    tokens.write_text("\n".join(seeded_token(i) for i in range(mode.cached_keys)) + "\n")
    env = {"BENCH_TOKENS": str(tokens)}
    url = f"{server.url}/auth/verify"
    # Every key verified once, so that all of them are cached before the
    # measurement: each run goes on from the token where the last one stopped
    # (a wrk run starts its rotation afresh), until the worker's own gauge
    # counts them all. Before, each run began again at the first token, and
    # the cache went on filling during the steady load.
    sent = 0
    for _ in range(WARM_UP_RUNS):
        if cache_entries(server) >= mode.cached_keys:
            break
        sent += load.run(
            load.wrk_command(
                url,
                seconds=max(1.0, mode.seconds),
                connections=mode.connections,
                script=bench._script(load.ROTATE_TOKENS),
            ),
            {**env, "BENCH_OFFSET": str(sent)},
        ).requests
    else:
        raise RuntimeError(f"F8: {cache_entries(server):,} of {mode.cached_keys:,} keys cached")
    cached_before = cache_entries(server)
    before = server.process.rss_kib()
    steady = load.run(
        load.wrk_command(
            url,
            seconds=mode.steady_seconds,
            connections=mode.connections,
            script=bench._script(load.ROTATE_TOKENS),
        ),
        env,
    )
    after = server.process.rss_kib()
    cached_after = cache_entries(server)
    growth = (after - before) / before * 100
    server.process.stop()
    bench.log(f"  {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB ({growth:+.2f}%)")
    return Figure(
        "F8",
        f"resident memory growth over {mode.steady_seconds:g} s of steady load, "
        f"{mode.cached_keys:,} cached keys",
        "%",
        10.0,
        False,
        growth,
        None,
        None,
        {
            "cached_keys_before": cached_before,
            "cached_keys_after": cached_after,
            "warm_up_requests": sent,
            "rss_mib_before": round(before / 1024, 1),
            "rss_mib_after": round(after / 1024, 1),
            "steady_rps": steady.rps,
            "unexpected_answers": steady.non_2xx + steady.socket_errors,
        },
    )


@contextlib.contextmanager
def bench_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="keyplane-bench-") as root:
        path = Path(root)
        path.chmod(0o755)
        yield path
