"""Every query on a request path seeks through an index, on SQLite and PostgreSQL.

The guard against a change that quietly makes a query O(n): each repository
call runs against tables with enough rows (and ``ANALYZE``) for the planner to
prefer an index when one fits, and the statement it actually sent is explained
again with its own parameters. On SQLite a plan fails when it scans a table or
sorts (it read every candidate row before returning the first), or when its
index search leaves out the page cursor; on PostgreSQL, run with EXPLAIN
ANALYZE, when it scans a table or looks at far more rows than it returns.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from benchmarks.seed import EPOCH, Plan, created_at, customer_id, key_id, seed, seeded_token
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from keyplane.domain.tokens import DISPLAY_PREFIX_LENGTH, hash_token
from keyplane.services.container import Services
from keyplane.store.repositories import Repositories
from keyplane.store.tables import (
    agents,
    audit_log,
    events,
    expiry_notices,
    revocations,
    revoked_sessions,
)

PLAN = Plan(customers=2_001, keys=20_000, big=8_000, deleted=2_000)
BIG = customer_id(0)
SMALL = customer_id(7)
EVENTS = 6_000
AUDIT = 6_000
REVOCATIONS = 6_000
REVOKED_SESSIONS = 6_000
AGENTS = 2_000
NOTICES = 2_000

Query = Callable[[Repositories], Awaitable[object]]
LISTING = "ix_accesskeys_live_listing"
# Every query asks for 100 rows at most; a seek looks at about that many.
MAX_ROWS_READ = 300
ROW_SOURCES = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


async def _fill(conn: AsyncConnection) -> None:
    """The tables besides customers and keys; half of the events and audit entries are
    customer 0's, so that its pages are much shorter than what it has."""
    await conn.execute(
        insert(agents),
        [
            {
                "id": uuid.UUID(int=n + 1),
                "customer_id": customer_id(n % PLAN.customers),
                "username": f"agent-{n}",
                "password_hash": "x",
                "permission": 64,
                "tm_create": EPOCH,
            }
            for n in range(AGENTS)
        ],
    )
    await conn.execute(
        insert(events),
        [
            {
                "id": uuid.UUID(int=n + 1),
                "customer_id": customer_id(0 if n % 2 == 0 else n % 200),
                "type": "accesskey_created",
                "payload": {},
                "tm_create": created_at(n),
                # Nearly all delivered, the newest few pending: the real shape.
                "delivery_status": "pending" if n >= EVENTS - 20 else "delivered",
                "tm_delivered": None if n >= EVENTS - 20 else created_at(n),
            }
            for n in range(EVENTS)
        ],
    )
    await conn.execute(
        insert(audit_log),
        [
            {
                "id": uuid.UUID(int=n + 1),
                "customer_id": customer_id(0 if n % 2 == 0 else n % 200),
                "type": "accesskey_created",
                "actor_type": "agent",
                "actor_id": uuid.UUID(int=1),
                "subject_id": key_id(n),
                "address": "127.0.0.1",
                "request_id": f"r{n}",
                "tm_create": created_at(n),
            }
            for n in range(AUDIT)
        ],
    )
    await conn.execute(
        insert(expiry_notices),
        [
            {"accesskey_id": key_id(n), "lead_seconds": 14 * 86_400, "tm_create": EPOCH}
            for n in range(NOTICES)
        ],
    )
    await conn.execute(
        insert(revocations),
        [
            {
                "kind": "accesskey",
                "subject_id": key_id(n),
                "token_hash": hash_token(seeded_token(n)),
                "tm_create": created_at(n),
            }
            for n in range(REVOCATIONS)
        ],
    )
    await conn.execute(
        insert(revoked_sessions),
        [
            {
                "id": uuid.UUID(int=n + 1),
                "agent_id": uuid.UUID(int=n % AGENTS + 1),
                "customer_id": customer_id(n % PLAN.customers),
                "tm_expire": created_at(n),
                "tm_create": created_at(n),
            }
            for n in range(REVOKED_SESSIONS)
        ],
    )


@pytest.fixture
async def seeded(services: Services) -> Services:
    await seed(services.settings.database_url, PLAN)
    async with services.database.engine.begin() as conn:
        await _fill(conn)
        await conn.exec_driver_sql("ANALYZE")
    return services


@contextmanager
def recorded(services: Services) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent to the database meanwhile, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def record(
        _conn: object, _cursor: object, statement: str, parameters: Any, _ctx: object, many: bool
    ) -> None:
        sent.append((statement, parameters[0] if many else parameters))

    targets = services.database.engines()
    for target in targets:
        event.listen(target, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", record)


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _pg_nodes(child)


def _pg_rows_read(node: dict[str, Any]) -> int:
    """Rows a table or index scan node looked at: returned, or read and thrown away."""
    if node["Node Type"] not in ROW_SOURCES:
        return 0
    looked_at = (
        node.get("Actual Rows", 0)
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
    )
    return int(looked_at * node.get("Actual Loops", 1))


async def _sqlite_plan(
    conn: AsyncConnection, statement: str, parameters: Any, must_seek_on: tuple[str, ...]
) -> tuple[str, list[str]]:
    """SQLite: no table scan, no sort, and the searches name the index and cursor columns."""
    rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
    details = [str(row[3]) for row in rows]
    problems = [
        d
        for d in details
        if (d.startswith("SCAN") and d != "SCAN CONSTANT ROW") or "TEMP B-TREE" in d
    ]
    # e.g. "SEARCH accesskeys USING INDEX ix_accesskeys_live_listing
    # (customer_id=? AND (tm_create,id)<(?,?))": the cursor is part of the search.
    searches = " ".join(d for d in details if d.startswith("SEARCH"))
    problems += [f"does not seek on {word}" for word in must_seek_on if word not in searches]
    return "\n".join(details), problems


async def _postgres_plan(
    conn: AsyncConnection, statement: str, parameters: Any
) -> tuple[str, list[str]]:
    """PostgreSQL, run (EXPLAIN ANALYZE): no table scan, and few rows looked at.

    Its planner picks among indexes by the data's shape (a customer's index, or
    the primary key read backwards when the customer holds half the rows); any
    of them is fine as long as the rows it looks at stay near what is wanted.
    """
    result = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
    document = result.scalar_one()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    nodes = list(_pg_nodes(plan))
    problems = [f"Seq Scan {n['Relation Name']}" for n in nodes if n["Node Type"] == "Seq Scan"]
    read = sum(_pg_rows_read(n) for n in nodes)
    if read > MAX_ROWS_READ:
        problems.append(f"looked at {read} rows (at most {MAX_ROWS_READ})")
    return json.dumps(plan, indent=1), problems


DEEP_INDEX = PLAN.big - PLAN.deleted - 5_000  # 5,000 live keys above the cursor
DEEP = created_at(DEEP_INDEX)
# name: (the call, what SQLite's index searches must name: indexes, cursor columns)
QUERIES: dict[str, tuple[Query, tuple[str, ...]]] = {
    "verify: key by token hash": (
        lambda r: r.accesskeys.get_by_hash(hash_token(seeded_token(123))),
        ("token_hash",),
    ),
    "get key by id": (lambda r: r.accesskeys.get(key_id(4_321)), ()),
    "list: first page": (lambda r: r.accesskeys.list_live(BIG, limit=100), (LISTING,)),
    # Deep: the cursor is in the index search, not a filter over what the search read.
    "list: deep page, keyplane cursor": (
        lambda r: r.accesskeys.list_live(BIG, limit=100, before=(DEEP, key_id(DEEP_INDEX))),
        (LISTING, "tm_create"),
    ),
    "list: deep page, timestamp cursor": (
        lambda r: r.accesskeys.list_live(BIG, limit=100, before=(DEEP, None)),
        (LISTING, "tm_create"),
    ),
    "list: a small customer": (lambda r: r.accesskeys.list_live(SMALL, limit=100), (LISTING,)),
    # A leaked token's key by its display prefix: one seek, whoever holds the most keys;
    # a prefix none of them has reads nothing (every seeded key shares one prefix).
    "find a key by its token prefix": (
        lambda r: r.accesskeys.list_live_by_prefix(
            BIG, seeded_token(123)[:DISPLAY_PREFIX_LENGTH], limit=100
        ),
        ("ix_accesskeys_live_prefix", "token_prefix"),
    ),
    "find a key by a token prefix nobody has": (
        lambda r: r.accesskeys.list_live_by_prefix(BIG, "vb_" + "Z" * 8, limit=100),
        ("ix_accesskeys_live_prefix", "token_prefix"),
    ),
    "rename a key": (
        lambda r: r.accesskeys.update_text(
            key_id(10), name="n", detail="", now=created_at(PLAN.keys)
        ),
        (),
    ),
    "delete a key": (
        lambda r: r.accesskeys.soft_delete(key_id(11), now=created_at(PLAN.keys)),
        (),
    ),
    "last-used flush": (
        lambda r: r.accesskeys.touch_last_used(
            {key_id(n): created_at(PLAN.keys) for n in range(50)}
        ),
        (),
    ),
    "expiring-soon scan": (
        lambda r: r.accesskeys.expiring_without_notice(
            created_at(PLAN.keys), timedelta(days=14), limit=100
        ),
        ("ix_accesskeys_live_expiry",),
    ),
    "customer by id": (lambda r: r.customers.get(SMALL), ()),
    "login: agent by username": (lambda r: r.agents.get_active_by_username("agent-77"), ()),
    "session: agent by id": (lambda r: r.agents.get_active(uuid.UUID(int=78)), ()),
    "session: ended by a logout?": (
        lambda r: r.revocations.session_revoked(uuid.UUID(int=4_321)),
        (),
    ),
    "revocation log: what is new": (lambda r: r.revocations.after(REVOCATIONS - 10), ()),
    "revocation log: last number": (lambda r: r.revocations.last_seq(), ()),
    "audit log: first page": (
        lambda r: r.audit.page(
            BIG, types=frozenset(), since=None, until=None, before=None, limit=100
        ),
        ("ix_audit_log_customer_seq",),
    ),
    "audit log: deep page": (
        lambda r: r.audit.page(
            BIG, types=frozenset(), since=None, until=None, before=2_000, limit=100
        ),
        ("ix_audit_log_customer_seq", "seq"),
    ),
    "deliveries: first page": (
        lambda r: r.events.deliveries(BIG, limit=100, before=None),
        ("ix_events_customer_seq",),
    ),
    "deliveries: deep page": (
        lambda r: r.events.deliveries(BIG, limit=100, before=2_000),
        ("ix_events_customer_seq", "seq"),
    ),
    # Background, hourly: one batch reads its own rows, not the whole log.
    "audit retention: a batch": (
        lambda r: r.audit.prune(created_at(AUDIT // 2), limit=100),
        (),
    ),
    "ended sessions retention: a batch": (
        lambda r: r.revocations.prune_sessions(created_at(REVOKED_SESSIONS // 2), limit=100),
        (),
    ),
    "outbox retention: a batch": (
        lambda r: r.events.prune_finished(created_at(EVENTS // 2), limit=100),
        (),
    ),
    "webhook outbox: lease what is due": (
        lambda r: r.events.lease_due(created_at(EVENTS), created_at(EVENTS + 1), limit=50),
        ("ix_events_status_seq",),
    ),
}


async def test_every_request_path_query_seeks_instead_of_scanning(seeded: Services) -> None:
    """One seeded database per engine, every query explained; all failures reported at once."""
    failures: list[str] = []
    for name, (query, must_seek_on) in QUERIES.items():
        async with seeded.database.transaction() as repos:
            with recorded(seeded) as sent:
                await query(repos)
            if not sent:
                failures.append(f"{name}: sent nothing")
            for statement, parameters in sent:
                if seeded.database.engine.dialect.name == "sqlite":
                    # SQLite's write transactions run on the write queue's own
                    # connection; the plan is the same from any connection.
                    async with seeded.database.engine.connect() as conn:
                        plan, problems = await _sqlite_plan(
                            conn, statement, parameters, must_seek_on
                        )
                else:
                    plan, problems = await _postgres_plan(repos.connection, statement, parameters)
                if problems:
                    failures.append(f"{name}: {problems}\n{statement}\n{plan}")
    assert not failures, "\n\n".join(failures)
