"""Background tasks stop between rounds, never inside one (a database call)."""

from __future__ import annotations

import asyncio

import pytest

from keyplane.background import BackgroundTask


async def test_stop_lets_the_round_in_progress_finish() -> None:
    rounds: list[str] = []
    in_round = asyncio.Event()

    async def run() -> None:
        while await task.pause(0):
            rounds.append("started")
            in_round.set()
            await asyncio.sleep(0.05)  # stands for a database statement
            rounds.append("finished")

    task = BackgroundTask("test", run)
    task.start()
    await in_round.wait()
    await task.stop()
    assert rounds[-1] == "finished"
    assert rounds.count("started") == rounds.count("finished") >= 1


async def test_stop_wakes_a_pausing_task_at_once() -> None:
    async def run() -> None:
        while await task.pause(3600):
            pass

    task = BackgroundTask("test", run)
    task.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(task.stop(), 1.0)


async def test_an_interruptible_task_is_cancelled() -> None:
    cancelled = asyncio.Event()
    running = asyncio.Event()

    async def run() -> None:
        running.set()
        try:
            await asyncio.sleep(3600)  # a listener that never pauses
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = BackgroundTask("test", run, interruptible=True)
    task.start()
    await running.wait()
    await asyncio.wait_for(task.stop(), 1.0)
    assert cancelled.is_set()


async def test_a_stopped_task_starts_again() -> None:
    rounds = 0

    async def run() -> None:
        nonlocal rounds
        while await task.pause(0):
            rounds += 1
            await asyncio.sleep(0)

    task = BackgroundTask("test", run)
    task.start()
    await asyncio.sleep(0.01)
    await task.stop()
    before = rounds
    task.start()
    await asyncio.sleep(0.01)
    await task.stop()
    assert rounds > before


async def test_an_interruptible_task_ends_although_a_cancellation_was_swallowed() -> None:
    """Python 3.11's ``wait_for`` returns the result of an operation that completes as
    the cancellation arrives, and drops the cancellation: redis-py sends under it."""
    sent = asyncio.get_running_loop().create_future()
    sends = 0

    async def run() -> None:  # a listener: it never pauses
        nonlocal sends
        while True:
            await asyncio.wait_for(sent, 1.0)
            sends += 1
            await asyncio.sleep(0.01)

    task = BackgroundTask("test", run, interruptible=True)
    task.start()
    await asyncio.sleep(0)
    sent.set_result(None)  # the send completes in the same step as the stop
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5.0)
    assert stopping in done
    assert sends >= 1  # the first cancellation was indeed swallowed


async def test_stop_passes_on_the_cancellation_of_its_caller() -> None:
    in_round = asyncio.Event()

    async def run() -> None:
        while await task.pause(0):
            in_round.set()
            await asyncio.sleep(0.2)  # a long round

    task = BackgroundTask("test", run)
    task.start()
    await in_round.wait()
    stopping = asyncio.ensure_future(task.stop())
    await asyncio.sleep(0.01)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await task.stop()  # the round ends; the task stops
