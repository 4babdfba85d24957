"""Prometheus metrics on the metrics port: exact counts per method and code, bounded labels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from testkit.channels import aio_channel
from testkit.metrics import Samples, scrape, series, value
from users.v1 import users_pb2, users_pb2_grpc
from users_service.server import UsersServer

from .conftest import ServerFactory

SERVICE = "users.v1.UserService"


@pytest.fixture
async def metered(
    start_server: ServerFactory, admin_token: str
) -> AsyncIterator[tuple[UsersServer, Any]]:
    """A server with its metrics port on, and a stub on a channel to it (as an admin)."""
    server, port = await start_server(metrics_listen_address="127.0.0.1:0")
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        yield server, users_pb2_grpc.UserServiceStub(channel)


def metrics_of(server: UsersServer) -> Samples:
    assert server.metrics_endpoint is not None
    return scrape(server.metrics_endpoint.port)


async def settled(server: UsersServer) -> Samples:
    """The metrics once no call is in flight: grpc.aio sends an aborted call's status before
    the handler's wrapper has recorded it, so a client can see an answer a moment earlier."""
    for _ in range(200):  # bounded
        samples = metrics_of(server)
        if value(samples, "grpc_server_calls_in_flight") == 0:
            return samples
        await asyncio.sleep(0.01)  # the server runs on this loop: let it finish its calls
    return samples


async def code_of(call: Any) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return "OK"


async def test_calls_are_counted_exactly_per_method_and_code(
    metered: tuple[UsersServer, Any],
) -> None:
    server, stub = metered
    for name in ("ada", "grace", "linus"):
        await stub.CreateUser(users_pb2.CreateUserRequest(username=name))
    codes = [
        await code_of(stub.GetUser(users_pb2.GetUserRequest(id=user_id)))
        for user_id in (1, 2, 404, 405, 406, -1)
    ]
    assert codes == ["OK", "OK", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "INVALID_ARGUMENT"]
    streamed = [user async for user in stub.GetUsers(users_pb2.GetUsersRequest())]
    assert len(streamed) == 3

    samples = await settled(server)
    expected = {
        ("CreateUser", "OK"): 3,
        ("GetUser", "OK"): 2,
        ("GetUser", "NOT_FOUND"): 3,
        ("GetUser", "INVALID_ARGUMENT"): 1,
        ("GetUsers", "OK"): 1,
    }
    ended = {
        (dict(labels)["grpc_method"].rpartition("/")[2], dict(labels)["grpc_status"]): count
        for (name, labels), count in samples.items()
        if name == "grpc_server_call_duration_seconds_count"
        and dict(labels)["grpc_method"].startswith(SERVICE)
    }
    assert ended == expected
    started = {"CreateUser": 3, "GetUser": 6, "GetUsers": 1}
    for method, count in started.items():
        name = "grpc_server_call_started_total"
        assert value(samples, name, grpc_method=f"{SERVICE}/{method}") == count
    # Every call fell in some bucket: the +Inf bucket equals the count.
    inf = value(
        samples,
        "grpc_server_call_duration_seconds_bucket",
        grpc_method=f"{SERVICE}/GetUser",
        grpc_status="NOT_FOUND",
        le="+Inf",
    )
    assert inf == 3
    assert value(samples, "grpc_server_calls_in_flight") == 0


async def test_store_operations_and_commit_batches_are_measured(
    metered: tuple[UsersServer, Any],
) -> None:
    server, stub = metered
    await asyncio.gather(
        *(stub.CreateUser(users_pb2.CreateUserRequest(username=f"user{i:03d}")) for i in range(20))
    )
    await stub.GetUser(users_pb2.GetUserRequest(id=1))
    samples = metrics_of(server)
    store = "db_client_operation_duration_seconds_count"
    assert value(samples, store, db_system_name="sqlite", db_operation_name="create_users") == 20
    assert value(samples, store, db_system_name="sqlite", db_operation_name="get_user") == 1
    # 20 users in some number of shared commits: every user counted once.
    assert value(samples, "userstack_store_commit_batch_size_sum") == 20
    assert 1 <= value(samples, "userstack_store_commit_batch_size_count") <= 20


async def test_state_gauges_are_read_when_scraped(metered: tuple[UsersServer, Any]) -> None:
    server, stub = metered
    await code_of(stub.GetUser(users_pb2.GetUserRequest(id=1)))  # the channel connects
    samples = metrics_of(server)
    assert value(samples, "userstack_users_serving") == 1
    assert value(samples, "userstack_users_draining") == 0
    assert value(samples, "userstack_users_connections") >= 1  # this test's channel
    assert value(samples, "process_resident_memory_bytes") > 0
    watch = stub.WatchUsers(users_pb2.WatchUsersRequest())
    await watch.wait_for_connection()
    for _ in range(100):  # bounded: the subscription is made as the handler starts
        if value(metrics_of(server), "userstack_users_watch_subscribers") == 1:
            break
        await asyncio.sleep(0.02)
    assert value(metrics_of(server), "userstack_users_watch_subscribers") == 1
    watch.cancel()


@pytest.mark.slow
async def test_ten_thousand_distinct_ids_add_no_series(metered: tuple[UsersServer, Any]) -> None:
    server, stub = metered
    await stub.CreateUser(users_pb2.CreateUserRequest(username="ada"))
    # Every (method, code) this test makes exists before the distinct ids are asked for.
    await stub.GetUser(users_pb2.GetUserRequest(id=1))
    await code_of(stub.GetUser(users_pb2.GetUserRequest(id=2)))
    await stub.BatchGetUsers(users_pb2.BatchGetUsersRequest(ids=[1, 2]))
    before = series(await settled(server), "")
    for start in range(1, 10_001, 1000):
        await stub.BatchGetUsers(users_pb2.BatchGetUsersRequest(ids=range(start, start + 1000)))
    for start in range(1, 2_001, 250):
        await asyncio.gather(
            *(
                code_of(stub.GetUser(users_pb2.GetUserRequest(id=i)))
                for i in range(start, start + 250)
            )
        )
    after = await settled(server)
    assert series(after, "") == before
    get = "grpc_server_call_duration_seconds_count"
    assert value(after, get, grpc_method=f"{SERVICE}/GetUser", grpc_status="NOT_FOUND") == 2_000
