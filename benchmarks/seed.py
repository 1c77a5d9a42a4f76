"""Fill a migrated keyplane database with many customers and keys, for benchmarks.

    python -m benchmarks.seed DATABASE_URL --customers 1001 --keys 1000000 \\
        --big 100000 --deleted 0

Customer 0 holds ``--big`` keys (a platform issuing a key per device); the
other keys are spread evenly over the other customers. Everything is
deterministic: key ``n`` has the token ``seeded_token(n)``, its id and its
customer's id follow from ``n``, and key ``n`` is created ``n`` milliseconds
after ``EPOCH``. The newest ``--deleted`` keys of customer 0 are soft-deleted.
Rows go in through keyplane's own table definitions, in bulk inserts of
``BATCH`` rows, one transaction each; the database must be migrated
(``keyplane migrate``) and should hold no seeded rows yet.
Not part of the product: the benchmarks' own tool.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keyplane.domain.tokens import DISPLAY_PREFIX_LENGTH, hash_token
from keyplane.store.engine import create_engine
from keyplane.store.tables import accesskeys, customers

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
BATCH = 5_000
_CUSTOMER_SPACE = 0x5EED_0000_0000_0000_0000_0000_0000_0000
_KEY_SPACE = 0x5EED_1111_0000_0000_0000_0000_0000_0000


def seeded_token(index: int) -> str:
    """The n-th seeded access key (well-formed, never issued by a real server)."""
    return "vb" + "_" + f"bench{index:027d}"


def customer_id(index: int) -> uuid.UUID:
    return uuid.UUID(int=_CUSTOMER_SPACE + index)


def key_id(index: int) -> uuid.UUID:
    return uuid.UUID(int=_KEY_SPACE + index)


def created_at(index: int) -> datetime:
    return EPOCH + timedelta(milliseconds=index)


@dataclass(frozen=True)
class Plan:
    """Which customer holds which key: customer 0 the first ``big``, the rest round robin."""

    customers: int
    keys: int
    big: int = 0
    deleted: int = 0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.keys < 0:
            raise ValueError("at least one customer, and no negative number of keys")
        if not 0 <= self.big <= self.keys or not 0 <= self.deleted <= self.big:
            raise ValueError("need 0 <= deleted <= big <= keys")
        if self.customers == 1 and self.big < self.keys:
            raise ValueError("with one customer, every key is the big customer's (big = keys)")

    def owner(self, index: int) -> int:
        if index < self.big:
            return 0
        return 1 + (index - self.big) % (self.customers - 1)

    def is_deleted(self, index: int) -> bool:
        return self.big - self.deleted <= index < self.big

    def key_row(self, index: int) -> dict[str, Any]:
        token = seeded_token(index)
        moment = created_at(index)
        return {
            "id": key_id(index),
            "customer_id": customer_id(self.owner(index)),
            "name": f"key-{index}",
            "detail": "",
            "token_hash": hash_token(token),
            "token_prefix": token[:DISPLAY_PREFIX_LENGTH],
            "tm_expire": FAR_FUTURE,
            "tm_create": moment,
            "tm_update": moment if self.is_deleted(index) else None,
            "tm_delete": moment if self.is_deleted(index) else None,
        }

    def batches(self, first: int = 0) -> Iterator[list[dict[str, Any]]]:
        for start in range(first, self.keys, BATCH):
            yield [self.key_row(i) for i in range(start, min(self.keys, start + BATCH))]


async def seed(database_url: str, plan: Plan) -> float:
    """Insert the plan's customers and keys, then ANALYZE; returns the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(database_url, pool_size=1, timeout=60.0)
    try:
        rows = [
            {"id": customer_id(n), "name": f"customer-{n}", "tm_create": EPOCH}
            for n in range(plan.customers)
        ]
        for start in range(0, len(rows), BATCH):
            async with engine.begin() as conn:
                await conn.execute(customers.insert(), rows[start : start + BATCH])
        for batch in plan.batches():
            async with engine.begin() as conn:
                await conn.execute(accesskeys.insert(), batch)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seed", description=__doc__)
    parser.add_argument(
        "database_url", help="sqlite+aiosqlite:///path.db or postgresql+asyncpg://…"
    )
    parser.add_argument("--customers", type=int, default=1001)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=100_000, help="keys of customer 0")
    parser.add_argument("--deleted", type=int, default=0, help="newest keys of customer 0 deleted")
    args = parser.parse_args(argv)
    plan = Plan(args.customers, args.keys, args.big, args.deleted)
    took = asyncio.run(seed(args.database_url, plan))
    print(f"seeded {plan.customers:,} customers and {plan.keys:,} keys in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
