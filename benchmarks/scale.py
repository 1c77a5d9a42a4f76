"""The data-scale figures S1..S6: costs that must not grow with the data.

A database seeded by ``benchmarks/seed.py`` (many customers, customer 0 holding
``Mode.scale_big`` keys) is served by a real ``keyplane serve``; pages are
read over HTTP with customer 0's seeded key. Ratios alternate their two sides
over the rounds like the F figures; latencies are the median of
``Mode.scale_samples`` requests per side and round.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import update

from benchmarks.seed import Plan, created_at, customer_id, key_id, seed, seeded_token
from benchmarks.servers import BIN, Keyplane
from benchmarks.suite import Bench, Figure
from keyplane.cache.verification import VerificationCache, VerifiedKey
from keyplane.domain.pagination import encode_cursor
from keyplane.domain.tokens import hash_token
from keyplane.store.engine import create_engine
from keyplane.store.tables import accesskeys

PAGE = 100
PER_CUSTOMER = 100  # S5/S6: cached entries per customer
FULL_CLI_KEYS = 100_000  # S4's targets are for this many keys
KEYS = "/v1.0/accesskeys"


class Pages:
    """Customer 0's pages over HTTP, and the cursor of any page of its live keys."""

    def __init__(self, server: Keyplane, plan: Plan) -> None:
        self.plan = plan
        self.url = server.url + KEYS
        self.http = httpx.Client(timeout=60)
        self.unexpected = 0

    def close(self) -> None:
        self.http.close()

    def cursor(self, page: int, live: int) -> str | None:
        """The page token of page ``page`` (1-based) when the newest ``live`` keys are live."""
        if page == 1:
            return None
        index = live - (page - 1) * PAGE  # the last key of the page before (newest is live - 1)
        return encode_cursor(created_at(index), key_id(index))

    def get(self, page_token: str | None, who: int = 0) -> tuple[float, str]:
        params = {"page_size": str(PAGE)}
        if page_token:
            params["page_token"] = page_token
        headers = {"Authorization": "Bearer " + self.token_of(who)}
        started = time.perf_counter()
        answer = self.http.get(self.url, params=params, headers=headers)
        took = time.perf_counter() - started
        if answer.status_code != 200:
            self.unexpected += 1
            return took, ""
        token: str = answer.json()["next_page_token"]
        return took, token

    def token_of(self, customer: int) -> str:
        """A seeded live key of ``customer`` (its oldest)."""
        if customer == 0:
            return seeded_token(0)
        return seeded_token(self.plan.big + customer - 1)

    def median_ms(self, page_token: str | None, samples: int) -> float:
        return statistics.median(self.get(page_token)[0] for _ in range(samples)) * 1000

    def read_all(self, who: int) -> tuple[float, int]:
        """Seconds to read every page of ``who``'s keys, and how many pages."""
        started = time.perf_counter()
        token: str | None = None
        pages = 0
        while True:
            _, token = self.get(token, who)
            pages += 1
            if not token:
                return time.perf_counter() - started, pages


Side = Callable[[], float]


def _alternate(bench: Bench, a: Side, b: Side) -> tuple[list[float], list[float]]:
    """Both sides once per round, in alternating order."""
    got_a: list[float] = []
    got_b: list[float] = []
    for round_ in range(bench.mode.rounds):
        if round_ % 2:
            got_b.append(b())
            got_a.append(a())
        else:
            got_a.append(a())
            got_b.append(b())
    return got_a, got_b


def _ratio(
    bench: Bench,
    id_: str,
    title: str,
    target: float,
    sides: tuple[str, list[float], str, list[float]],
    pages: Pages,
    scale: float = 1.0,
) -> Figure:
    a_name, a, b_name, b = sides
    ratios = [x / max(y * scale, 1e-9) for x, y in zip(a, b, strict=True)]
    value = statistics.median(ratios)
    figure = Figure(
        id_,
        title,
        "ratio",
        target,
        False,
        value,
        (min(ratios), max(ratios)),
        {a_name: [round(v, 3) for v in a], b_name: [round(v, 3) for v in b]},
        {"unexpected_answers": pages.unexpected},
        sides_unit="ms",
    )
    bench.log(f"  {value:.3f} (spread {min(ratios):.3f}..{max(ratios):.3f}); target <= {target}")
    return figure


async def _set_deleted(database_url: str, plan: Plan, count: int, deleted: bool) -> None:
    """Soft-delete (or bring back) customer 0's newest ``count`` keys: one id range."""
    engine = create_engine(database_url, pool_size=1, timeout=60.0)
    first, last = key_id(plan.big - count), key_id(plan.big - 1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(accesskeys)
                .where(accesskeys.c.id >= first, accesskeys.c.id <= last)
                .values(tm_delete=created_at(plan.keys) if deleted else None)
            )
        if engine.dialect.name == "postgresql":
            # Each toggle leaves dead row versions behind in the listing index,
            # which every later page would step over: clean up as autovacuum would.
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE accesskeys")
    finally:
        await engine.dispose()


def _serve_seeded(bench: Bench, engine: str, plan: Plan) -> Keyplane:
    if engine == "sqlite":
        server = bench.keyplane("keyplane-scale-sqlite")
    else:
        url = bench.backends.database("bench_scale")
        server = bench.keyplane("keyplane-scale-pg", database_url=url)
    took = asyncio.run(seed(server.database_url, plan))
    bench.log(f"  seeded {plan.keys:,} keys of {plan.customers:,} customers in {took:.1f} s")
    return server


def paging_figures(bench: Bench, engine: str, plan: Plan) -> tuple[list[Figure], Keyplane]:
    """S1, S2 and S3 on one engine."""
    mode = bench.mode
    server = _serve_seeded(bench, engine, plan)
    pages = Pages(server, plan)
    deep_page = plan.big // PAGE
    figures = []
    try:
        deep = pages.cursor(deep_page, plan.big)
        for warm in (None, deep):  # the connection, the statement caches, the pages
            pages.median_ms(warm, mode.scale_samples)
        bench.log(f"S1 {engine}: page {deep_page:,} ÷ page 1 of {plan.big:,} keys")
        first_ms, deep_ms = _alternate(
            bench,
            lambda: pages.median_ms(None, mode.scale_samples),
            lambda: pages.median_ms(deep, mode.scale_samples),
        )
        figures.append(
            _ratio(
                bench,
                f"S1 {engine}",
                f"listing: page {deep_page:,} ÷ page 1, a customer with {plan.big:,} keys "
                f"({engine})",
                1.2,
                (f"page {deep_page} (ms)", deep_ms, "page 1 (ms)", first_ms),
                pages,
            )
        )

        small = (plan.keys - plan.big) // (plan.customers - 1)
        bench.log(f"S3 {engine}: every page of {plan.big:,} keys ÷ of {small:,}, per key")
        big_s, small_s = _alternate(
            bench, lambda: pages.read_all(0)[0] * 1000, lambda: pages.read_all(1)[0] * 1000
        )
        figures.append(
            _ratio(
                bench,
                f"S3 {engine}",
                f"listing: reading every page of {plan.big:,} keys ÷ {plan.big / small:,.0f} x "
                f"every page of {small:,} ({engine})",
                1.3,
                (f"{plan.big} keys (ms)", big_s, f"{small} keys (ms)", small_s),
                pages,
                scale=plan.big / small,
            )
        )

        bench.log(f"S2 {engine}: first page, newest {plan.deleted:,} deleted ÷ none deleted")

        def with_deleted() -> float:
            asyncio.run(_set_deleted(server.database_url, plan, plan.deleted, True))
            try:
                return pages.median_ms(None, mode.scale_samples)
            finally:
                asyncio.run(_set_deleted(server.database_url, plan, plan.deleted, False))

        deleted_ms, none_ms = _alternate(
            bench, with_deleted, lambda: pages.median_ms(None, mode.scale_samples)
        )
        figures.append(
            _ratio(
                bench,
                f"S2 {engine}",
                f"listing: first page with the newest {plan.deleted:,} keys deleted ÷ none "
                f"deleted ({engine})",
                1.2,
                ("deleted (ms)", deleted_ms, "none deleted (ms)", none_ms),
                pages,
            )
        )
    finally:
        pages.close()
    return figures, server


def cli_figures(bench: Bench, server: Keyplane, plan: Plan) -> list[Figure]:
    """S4: ``keyplane accesskey list`` of customer 0, its wall time and peak memory."""
    bench.log(f"S4: keyplane accesskey list of {plan.big:,} keys (table, to a pipe)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPLANE_")}
    env.update(
        KEYPLANE_DATABASE_URL=server.database_url,
        KEYPLANE_DATA_DIR=str(bench.root / "keyplane-scale-sqlite"),
        KEYPLANE_LOG_LEVEL="WARNING",
    )
    command = [str(BIN / "keyplane"), "accesskey", "list", "--customer-id", str(customer_id(0))]
    out = bench.root / "s4-list.txt"
    with out.open("wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    peak_mib = usage.ru_maxrss / 1024
    lines = out.read_bytes().count(b"\n")
    note = "" if process.returncode == 0 else f"exit {process.returncode}: {errors[-300:]}"
    bench.log(f"  {seconds:.1f} s, peak {peak_mib:.0f} MiB, {lines:,} lines; target 10 s, 150 MB")
    details = {"keys": plan.big, "output_lines": lines, "exit_status": process.returncode}
    # The targets are for 100,000 keys: a smaller run reports, it does not judge.
    full = plan.big >= FULL_CLI_KEYS
    return [
        Figure(
            "S4 time",
            f"`keyplane accesskey list` of {plan.big:,} keys: wall time",
            "s",
            10.0 if full else None,
            False,
            seconds if not note else None,
            details=details,
            note=note and "not measured: " + note,
        ),
        Figure(
            "S4 memory",
            f"`keyplane accesskey list` of {plan.big:,} keys: peak resident memory",
            "MiB",
            150.0 if full else None,
            False,
            peak_mib if not note else None,
            details=details,
            note=note and "not measured: " + note,
        ),
    ]


def _full_cache(entries: int, customers: int) -> VerificationCache:
    cache = VerificationCache(max_entries=entries, ttl=3600.0, monotonic=lambda: 0.0)
    cache.set_connected(True)
    expire = created_at(0) + timedelta(days=3650)
    for n in range(entries):
        key = VerifiedKey(key_id(n), customer_id(n % customers), expire)
        cache.put_key(hash_token(seeded_token(n)), key, cache.generation)
    return cache


def _drop_ms(cache: VerificationCache, customers: range) -> list[float]:
    took = []
    for n in customers:
        started = time.perf_counter()
        cache.invalidate_customer(customer_id(n))
        took.append((time.perf_counter() - started) * 1000)
    return took


def cache_figures(bench: Bench) -> list[Figure]:
    """S5 (dropping a customer from a full cache) and S6 (memory per cached key), in process.

    The cache is shaped like the seeded data: a customer holds ``PER_CUSTOMER``
    entries (a thousand customers in a full cache of 100,000); the details also
    give the drop of a customer holding ten times as many.
    """
    mode = bench.mode
    entries = mode.cache_entries
    customers = max(1, entries // PER_CUSTOMER)
    bench.log(f"S5: dropping a customer ({PER_CUSTOMER} entries) from {entries:,} entries")
    took: list[float] = []
    large: list[float] = []
    for _ in range(mode.rounds):
        took += _drop_ms(_full_cache(entries, customers), range(min(customers, 50)))
        # Customer n holds entries n, n + customers, ...: 10 customers' worth, as one.
        large += _drop_ms(_full_cache(entries, max(1, customers // 10)), range(3))
    value = statistics.median(took)
    bench.log(f"  median {value:.3f} ms, highest {max(took):.3f} ms; target <= 1 ms")
    s5 = Figure(
        "S5",
        f"dropping a customer ({PER_CUSTOMER} entries) from a verification cache of "
        f"{entries:,} entries",
        "ms",
        1.0,
        False,
        value,
        details={
            "highest_ms": round(max(took), 4),
            "drops": len(took),
            f"median_ms_for_a_customer_of_{PER_CUSTOMER * 10}_entries": round(
                statistics.median(large), 4
            ),
        },
    )
    bench.log(f"S6: memory per entry of a full verification cache of {entries:,} keys")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = _full_cache(entries, customers)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_entry = held / len(cache)
    bench.log(f"  {per_entry:,.0f} bytes per entry ({held / 2**20:.1f} MiB in all)")
    s6 = Figure(
        "S6",
        f"a full verification cache of {entries:,} keys: memory per entry (Python allocations)",
        "bytes",
        None,
        False,
        per_entry,
        details={"total_mib": round(held / 2**20, 2), "entries": len(cache)},
    )
    return [s5, s6]


def run_scale_figures(bench: Bench) -> list[Figure]:
    mode = bench.mode
    plan = Plan(mode.scale_customers, mode.scale_keys, mode.scale_big, mode.scale_deleted)
    figures: list[Figure] = []
    sqlite_figures, sqlite = paging_figures(bench, "sqlite", plan)
    figures += cli_figures(bench, sqlite, plan)
    sqlite.process.stop()
    pg_figures, pg = paging_figures(bench, "postgresql", plan)
    pg.process.stop()
    for number in ("S1", "S2", "S3"):
        figures += [f for f in [*sqlite_figures, *pg_figures] if f.id.startswith(number + " ")]
    figures += cache_figures(bench)
    return sorted(figures, key=lambda figure: figure.id)
