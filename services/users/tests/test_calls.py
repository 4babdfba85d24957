"""Per-call behaviour: request ids, structured logs, message size limits and deadlines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import grpc
import pytest
from users.v1 import users_pb2, users_pb2_grpc
from users_service.logs import JsonFormatter
from users_service.server import UsersServer
from users_service.store import NewUser


def rpc_records(caplog: pytest.LogCaptureFixture, method: str) -> list[dict[str, Any]]:
    """The interceptor's per-RPC log lines for `method`, as the JSON the server writes."""
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    return [line for line in lines if line.get("method") == f"/users.v1.UserService/{method}"]


async def test_request_id_from_the_caller_is_returned_and_logged(
    stub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call = stub.CreateUser(
        users_pb2.CreateUserRequest(username="traced"), metadata=(("x-request-id", "trace-42"),)
    )
    await call
    assert ("x-request-id", "trace-42") in tuple(await call.initial_metadata())
    [line] = rpc_records(caplog, "CreateUser")
    assert line["request_id"] == "trace-42"
    assert line["code"] == "OK"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"


async def test_request_id_is_generated_when_missing_and_logged_on_every_line_of_the_call(
    stub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def two_rows() -> Any:
        yield users_pb2.CreateUserRequest(username="row1")
        yield users_pb2.CreateUserRequest(username="row2")

    call = stub.ImportUsers(two_rows())
    await call
    generated = dict(await call.initial_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    of_call = [line for line in lines if line.get("request_id") == generated]
    assert {line["message"] for line in of_call} >= {
        "import done",
        "rpc /users.v1.UserService/ImportUsers OK",
    }


async def test_error_calls_are_logged_with_their_code(
    stub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetUser(users_pb2.GetUserRequest(id=12345))
    [line] = rpc_records(caplog, "GetUser")
    assert line["code"] == "NOT_FOUND"


async def test_oversized_request_is_resource_exhausted(start_server: Any) -> None:
    _, port = await start_server(max_message_bytes=64 * 1024)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateUser(
                users_pb2.CreateUserRequest(username="big", display_name="x" * 100_000)
            )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The server is unharmed and still serves normal calls.
        assert (await stub.CreateUser(users_pb2.CreateUserRequest(username="small"))).id


async def test_oversized_response_is_resource_exhausted_not_a_crash(start_server: Any) -> None:
    server, port = await start_server(max_message_bytes=16 * 1024)
    await server.store.create_users([NewUser(f"user{i:04}", email="") for i in range(400)])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListUsers(users_pb2.ListUsersRequest(page_size=400))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len((await stub.ListUsers(users_pb2.ListUsersRequest(page_size=10))).users) == 10


async def test_deadline_expiry_ends_the_call_and_its_server_side_work(
    stub: Any, server: tuple[UsersServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call = stub.WatchUsers(users_pb2.WatchUsersRequest(), timeout=0.3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):  # bounded wait for the server to notice
        if rpc_records(caplog, "WatchUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = rpc_records(caplog, "WatchUsers")
    assert line["code"] in ("DEADLINE_EXCEEDED", "CANCELLED")
    assert server[0].feed.subscriber_count == 0, "the server-side subscription was not released"


async def test_client_cancellation_stops_a_streaming_read(
    stub: Any, server: tuple[UsersServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # More users than flow-control windows hold: the server cannot have sent them all already.
    await server[0].store.create_users([NewUser(f"many{i:05}") for i in range(20000)])
    call = stub.GetUsers(users_pb2.GetUsersRequest())
    await call.read()
    call.cancel()
    for _ in range(100):
        if rpc_records(caplog, "GetUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = rpc_records(caplog, "GetUsers")
    assert line["code"] == "CANCELLED", "the server streamed on after the client cancelled"


def read_a_little_then_hang_up(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        stream = stub.GetUsers(users_pb2.GetUsersRequest(), metadata=(("x-request-id", "hangup"),))
        for count, _ in enumerate(stream):
            if count == 10:
                break


async def test_a_client_hanging_up_mid_stream_is_logged_as_cancelled_with_its_request_id(
    server: tuple[UsersServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await server[0].store.create_users([NewUser(f"hang{i:05}") for i in range(20000)])
    await asyncio.to_thread(read_a_little_then_hang_up, server[1])
    for _ in range(200):
        if rpc_records(caplog, "GetUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = rpc_records(caplog, "GetUsers")
    assert (line["code"], line["request_id"]) == ("CANCELLED", "hangup")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
