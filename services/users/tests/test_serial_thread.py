"""SerialThread keeps run_in_executor's contract on one thread: order, errors, skipping, close."""

from __future__ import annotations

import asyncio
import threading
from functools import partial

import pytest
from users_service.store.serial_thread import SerialThread


async def test_work_runs_on_one_other_thread_in_the_order_handed_over() -> None:
    worker = SerialThread("test-serial")
    seen: list[tuple[int, str]] = []

    def work(index: int) -> int:
        seen.append((index, threading.current_thread().name))
        return index * 10

    results = await asyncio.gather(*(worker.run(partial(work, i)) for i in range(50)))
    worker.close()
    assert results == [i * 10 for i in range(50)]
    assert [index for index, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-serial"}
    assert threading.current_thread().name != "test-serial"


async def test_an_error_is_raised_to_its_caller_and_the_thread_goes_on() -> None:
    worker = SerialThread("test-serial")

    def fails() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await worker.run(fails)
    assert await worker.run(lambda: 7) == 7
    worker.close()


async def test_work_whose_caller_gave_up_before_it_started_is_skipped() -> None:
    worker = SerialThread("test-serial")
    gate = threading.Event()
    ran: list[str] = []
    blocker = asyncio.create_task(worker.run(lambda: gate.wait(10)))
    await asyncio.sleep(0.05)  # the thread is inside the blocker
    skipped = asyncio.create_task(worker.run(lambda: ran.append("skipped")))
    await asyncio.sleep(0)
    skipped.cancel()
    gate.set()
    assert await blocker is True
    await worker.run(lambda: ran.append("next"))
    assert ran == ["next"]
    with pytest.raises(asyncio.CancelledError):
        await skipped
    worker.close()


async def test_close_waits_for_the_work_handed_over_and_stops_the_thread() -> None:
    worker = SerialThread("test-serial")
    done = threading.Event()
    await worker.run(lambda: None)
    started = [t for t in threading.enumerate() if t.name == "test-serial"]
    assert len(started) == 1
    pending = asyncio.ensure_future(worker.run(done.set))
    await asyncio.sleep(0)  # handed over
    worker.close()
    assert done.is_set()
    assert not started[0].is_alive()
    await pending
    with pytest.raises(RuntimeError, match="closed"):
        await worker.run(lambda: None)
