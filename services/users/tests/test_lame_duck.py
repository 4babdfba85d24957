"""The lame duck's promise when the drain itself goes wrong: no held call waits forever."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from users_service.drain import LameDuck
from users_service.lifecycle import ShuttingDown


async def test_held_calls_are_refused_even_if_the_drain_is_cancelled() -> None:
    server = grpc.aio.server()
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gate = LameDuck()
    held = [asyncio.create_task(gate.refuse()) for _ in range(3)]
    # A lame duck that waits up to 30 s for quiet, with held calls keeping it busy.
    drain = asyncio.create_task(gate.stop(server, grace=1.0, within=30.0))
    await asyncio.sleep(0.05)
    assert gate.closed
    assert not any(task.done() for task in held)

    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    for task in held:
        with pytest.raises(ShuttingDown):
            await asyncio.wait_for(task, timeout=1.0)
    await server.stop(0)


async def test_held_calls_are_refused_after_the_stop_has_begun() -> None:
    server = grpc.aio.server()
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gate = LameDuck()
    held = asyncio.create_task(gate.refuse())
    stopping = await gate.stop(server, grace=1.0, within=1.0)
    with pytest.raises(ShuttingDown, match="retry elsewhere"):
        await asyncio.wait_for(held, timeout=1.0)
    await stopping
    assert gate.held == 1
