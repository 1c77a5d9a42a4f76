"""The gate of verification cache misses: a bound at once, a bounded queue, then refusal."""

from __future__ import annotations

import anyio
import pytest

from keyplane.errors import Unavailable
from keyplane.services.admission import YIELD_TURNS, MissAdmission


async def test_at_most_the_concurrency_runs_and_the_queue_waits_in_order() -> None:
    gate = MissAdmission(concurrency=2, queue=3)
    release = anyio.Event()
    running: list[int] = []
    peak = 0
    order: list[int] = []

    async def miss(number: int) -> None:
        nonlocal peak
        async with gate.admitted():
            order.append(number)
            running.append(number)
            peak = max(peak, len(running))
            await release.wait()
            running.remove(number)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for number in range(5):
                tg.start_soon(miss, number)
                await anyio.wait_all_tasks_blocked()
            assert sorted(running) == [0, 1]
            assert gate.waiting == 3
            release.set()
    assert peak == 2
    assert order == [0, 1, 2, 3, 4]
    assert gate.waiting == 0
    assert gate.refused == 0


async def test_beyond_the_queue_a_miss_is_refused_at_once_and_costs_nothing() -> None:
    gate = MissAdmission(concurrency=1, queue=1)
    release = anyio.Event()
    ran = 0

    async def miss() -> None:
        nonlocal ran
        async with gate.admitted():
            ran += 1
            await release.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(miss)
            tg.start_soon(miss)
            await anyio.wait_all_tasks_blocked()
            assert (ran, gate.waiting) == (1, 1)
            with pytest.raises(Unavailable) as refused:
                async with gate.admitted():
                    pytest.fail("a refused miss must not run")
            assert refused.value.reason == "SERVICE_UNAVAILABLE"
            assert "Retry-After" in refused.value.message
            assert gate.refused == 1
            release.set()
    assert ran == 2
    # Once the queue has drained, misses are admitted again.
    async with gate.admitted():
        ran += 1
    assert ran == 3


async def test_a_miss_that_fails_or_is_cancelled_frees_its_place() -> None:
    gate = MissAdmission(concurrency=1, queue=0)
    with pytest.raises(RuntimeError):
        async with gate.admitted():
            raise RuntimeError("the database read failed")
    with anyio.move_on_after(0) as scope:
        async with gate.admitted():
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    async with gate.admitted():
        pass
    assert gate.refused == 0


async def test_an_admitted_miss_lets_the_loop_run_what_is_waiting_first() -> None:
    gate = MissAdmission(concurrency=1, queue=1)
    events: list[str] = []

    async def hit() -> None:
        events.append("hit")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hit)  # scheduled, not yet run
        async with gate.admitted():
            events.append("miss")
    assert events == ["hit", "miss"]


async def test_an_admitted_miss_waits_its_turns_for_hits_still_arriving() -> None:
    # A hit whose request is read a few loop turns later (from a busy socket)
    # still runs first; one that needs more turns than the gate waits does not.
    gate = MissAdmission(concurrency=1, queue=1)
    events: list[str] = []

    async def hit_after(turns: int) -> None:
        for _ in range(turns):
            await anyio.lowlevel.checkpoint()
        events.append(f"hit after {turns} turns")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hit_after, 7)
        tg.start_soon(hit_after, YIELD_TURNS + 1)
        async with gate.admitted():
            events.append("miss")
    assert events == [
        "hit after 7 turns",
        "miss",
        f"hit after {YIELD_TURNS + 1} turns",
    ]
