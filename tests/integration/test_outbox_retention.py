"""The events outbox keeps finished events for KEYPLANE_EVENT_RETENTION_DAYS, and no longer.

Finished: delivered, or skipped (no webhook). Pending and failed events are
never pruned, however old; pruning goes in bounded batches, one transaction
each.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import event, insert, select

from keyplane.domain.clock import FrozenClock
from keyplane.services.container import Services
from keyplane.services.events import OutboxRetention
from keyplane.store.tables import events

CUSTOMER = uuid.UUID(int=7)
STATUSES = ("delivered", "skipped", "pending", "failed")


async def _add(services: Services, status: str, age_days: float, count: int = 1) -> None:
    moment = services.clock.now() - timedelta(days=age_days)
    async with services.database.transaction() as repos:
        await repos.connection.execute(
            insert(events),
            [
                {
                    "id": uuid.uuid4(),
                    "customer_id": CUSTOMER,
                    "type": "accesskey_created",
                    "payload": {},
                    "tm_create": moment,
                    "delivery_status": status,
                    "tm_delivered": moment if status == "delivered" else None,
                }
                for _ in range(count)
            ],
        )


async def _left(services: Services) -> dict[str, int]:
    async with services.database.reader() as repos:
        rows = (await repos.connection.execute(select(events.c.delivery_status))).scalars()
        counted: dict[str, int] = {}
        for status in rows:
            counted[status] = counted.get(status, 0) + 1
        return counted


async def test_only_finished_events_past_the_retention_are_pruned(
    services: Services, clock: FrozenClock
) -> None:
    for status in STATUSES:
        await _add(services, status, age_days=400, count=3)  # long past it
        await _add(services, status, age_days=29, count=2)  # within it
    retention = OutboxRetention(services.database, clock, retention_days=30, batch=4, pause=0)
    assert await retention.prune() == 6
    assert await _left(services) == {"delivered": 2, "skipped": 2, "pending": 5, "failed": 5}
    clock.advance(2 * 86_400)  # the younger ones are now 31 days old
    assert await retention.prune() == 4
    assert await _left(services) == {"pending": 5, "failed": 5}


async def test_each_batch_is_its_own_bounded_transaction(
    services: Services, clock: FrozenClock
) -> None:
    await _add(services, "delivered", age_days=90, count=23)
    await _add(services, "pending", age_days=90, count=2)
    deleted_per_statement: list[int] = []

    def count(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deleted_per_statement.append(cursor.rowcount)  # type: ignore[attr-defined]

    engines = services.database.engines()
    for engine in engines:
        event.listen(engine, "after_cursor_execute", count)
    try:
        retention = OutboxRetention(services.database, clock, retention_days=30, batch=5, pause=0)
        batches = []
        while pruned := await retention.prune_batch():
            batches.append(pruned)
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", count)
    assert batches == [5, 5, 5, 5, 3]
    assert deleted_per_statement == batches
    assert await _left(services) == {"pending": 2}


async def test_the_retention_runs_in_the_background_of_a_started_replica(
    services: Services,
) -> None:
    await _add(services, "delivered", age_days=31)
    await _add(services, "delivered", age_days=1)
    # The first round is due at once, and stopping lets a round in progress finish.
    await services.outbox.start()
    await services.outbox.stop()
    assert await _left(services) == {"delivered": 1}
