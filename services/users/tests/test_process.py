"""The real process: SIGTERM drain with calls in flight, a second signal, SIGKILL durability."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc

from .conftest import ServerProcess

pytestmark = pytest.mark.slow

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def import_in_flight(
    stub: Any, name: str, signalled: asyncio.Event, first_sent: asyncio.Event
) -> Any:
    """An ImportUsers call that sends one row, waits for the signal, then finishes."""

    async def rows() -> AsyncIterator[Any]:
        yield users_pb2.CreateUserRequest(username=f"{name}-0")
        first_sent.set()
        await signalled.wait()
        await asyncio.sleep(0.3)  # still sending well after the drain began
        for i in (1, 2):
            yield users_pb2.CreateUserRequest(username=f"{name}-{i}")

    return await stub.ImportUsers(rows())


async def probe_new_connections(
    target: str, log: list[tuple[float, str]], stop: asyncio.Event
) -> None:
    """Health Checks on fresh channels every 10 ms, recording when each answered what."""
    while not stop.is_set():
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
                log.append(
                    (
                        time.monotonic(),
                        health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status),
                    )
                )
            except grpc.aio.AioRpcError as error:
                log.append((time.monotonic(), error.code().name))
        await asyncio.sleep(0.01)


async def read_to_end(call: Any) -> list[Any]:
    """Every message of a server stream (the status is only seen after them)."""
    messages = []
    while (message := await call.read()) != grpc.aio.EOF:
        messages.append(message)
    return messages


async def unary_load(stub: Any, codes: list[str], stop: asyncio.Event) -> None:
    for i in range(2000):  # bounded
        if stop.is_set():
            return
        try:
            await stub.CreateUser(users_pb2.CreateUserRequest(username=f"load{i:04}"), timeout=5)
            codes.append("OK")
        except grpc.aio.AioRpcError as error:
            codes.append(error.code().name)


async def test_sigterm_drains_in_flight_calls_and_exits_0(
    spawn_server: Callable[..., ServerProcess], admin_token: str
) -> None:
    proc = spawn_server(USERS_GRACE_PERIOD_SECONDS="8")
    signalled, stop = asyncio.Event(), asyncio.Event()
    probe_log: list[tuple[float, str]] = []
    load_codes: list[str] = []
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        health_watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await health_watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        user_watch = stub.WatchUsers(users_pb2.WatchUsersRequest())
        await user_watch.initial_metadata()
        sent = [asyncio.Event() for _ in range(3)]
        imports = [
            asyncio.create_task(import_in_flight(stub, f"imp{i}", signalled, sent[i]))
            for i in range(3)
        ]
        await asyncio.gather(*(event.wait() for event in sent))
        prober = asyncio.create_task(probe_new_connections(proc.target, probe_log, stop))
        load = asyncio.create_task(unary_load(stub, load_codes, stop))
        await asyncio.sleep(0.3)
        proc.process.send_signal(signal.SIGTERM)
        signalled.set()
        assert (await asyncio.wait_for(health_watch.read(), 5)).status == NOT_SERVING
        not_serving_at = time.monotonic()
        summaries = await asyncio.wait_for(asyncio.gather(*imports), 10)
        events = await asyncio.wait_for(read_to_end(user_watch), 5)
        assert await user_watch.code() == grpc.StatusCode.OK
        assert await asyncio.wait_for(health_watch.code(), 5) == grpc.StatusCode.OK
        exit_code = await asyncio.to_thread(proc.process.wait, 15)
        stop.set()
        await asyncio.gather(prober, load)
    assert exit_code == 0
    assert [s.created_count for s in summaries] == [3, 3, 3], "an in-flight call was cut off"
    # A call the server accepted is never cut off: each one it logged finished OK (and each of
    # those answers reached the client) or was refused at the door while draining (UNAVAILABLE,
    # held through the lame-duck period, answered after the GOAWAY; test_drain.py under load).
    served = [json.loads(line) for line in proc.lines if '"method": "/users.v1.' in line]
    assert {line["code"] for line in served} <= {"OK", "UNAVAILABLE"}, served
    creates = [line for line in served if line["method"].endswith("/CreateUser")]
    assert sum(line["code"] == "OK" for line in creates) == load_codes.count("OK")
    assert "UNAVAILABLE" in load_codes, "no call arrived during the lame-duck period"
    assert set(load_codes) <= {"OK", "UNAVAILABLE"}, load_codes
    assert "OK" in load_codes
    # The feed closes when the drain begins: it carried the changes made before, in order.
    event_ids = [event.user.id for event in events]
    assert len(event_ids) >= 3
    assert event_ids == sorted(set(event_ids))
    refused = [at for at, code in probe_log if code not in ("SERVING", "NOT_SERVING")]
    assert refused, "new connections were never refused"
    assert not_serving_at < min(refused), "the listener closed before health said NOT_SERVING"
    proc.wait_for_log(r'"message": "stopped"')


async def test_a_second_signal_exits_at_once(
    spawn_server: Callable[..., ServerProcess], admin_token: str
) -> None:
    proc = spawn_server(USERS_GRACE_PERIOD_SECONDS="60")
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        held = asyncio.Event()

        async def never_ending() -> AsyncIterator[Any]:
            yield users_pb2.CreateUserRequest(username="holder")
            held.set()
            await asyncio.Event().wait()

        call = stub.ImportUsers(never_ending())
        await held.wait()
        await asyncio.sleep(0.2)
        proc.process.send_signal(signal.SIGTERM)
        proc.wait_for_log(r'"message": "draining"')
        started = time.monotonic()
        proc.process.send_signal(signal.SIGINT)
        exit_code = await asyncio.to_thread(proc.process.wait, 10)
        call.cancel()
    assert time.monotonic() - started < 3
    assert exit_code == 128 + signal.SIGINT


async def test_acknowledged_writes_survive_sigkill(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path, admin_token: str
) -> None:
    db = tmp_path / "killed" / "users.db"
    proc = spawn_server(db)
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        created = await asyncio.gather(
            *(
                stub.CreateUser(users_pb2.CreateUserRequest(username=f"durable{i:03}"))
                for i in range(200)
            )
        )
    proc.process.send_signal(signal.SIGKILL)
    proc.process.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT id FROM users")}
    assert {user.id for user in created} <= stored
    restarted = spawn_server(db)
    async with aio_channel(restarted.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        page = await stub.ListUsers(users_pb2.ListUsersRequest(page_size=1000))
    assert len(page.users) == 200
