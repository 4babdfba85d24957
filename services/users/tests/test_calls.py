"""Per-call behaviour: request ids, structured logs, message size limits and deadlines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import grpc
import pytest
from plumbing.logs import JsonFormatter
from testkit.channels import aio_channel, sync_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.calls import rpc_log
from users_service.rpc_log import RpcLog
from users_service.server import UsersServer
from users_service.store import NewUser

SERVICE = "users.v1.UserService"


class ServerLog:
    """What an in-process server logged, as the JSON lines it writes: the per-RPC lines (which
    RpcLog writes to stderr, read through capsys) and every other record (through caplog)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
        self._capsys = capsys
        self._caplog = caplog
        self._rpc_lines: list[dict[str, Any]] = []

    def lines(self) -> list[dict[str, Any]]:
        rpc_log.flush()
        written = self._capsys.readouterr().err.splitlines()
        self._rpc_lines += [json.loads(line) for line in written if line.startswith("{")]
        formatter = JsonFormatter()
        return self._rpc_lines + [json.loads(formatter.format(r)) for r in self._caplog.records]

    def rpcs(self, method: str) -> list[dict[str, Any]]:
        """The per-RPC lines of `method`."""
        return [line for line in self.lines() if line.get("method") == f"/{SERVICE}/{method}"]


@pytest.fixture
def server_log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> ServerLog:
    caplog.set_level(logging.INFO)
    return ServerLog(capsys, caplog)


async def test_request_id_from_the_caller_is_returned_and_logged(
    stub: Any, server_log: ServerLog
) -> None:
    call = stub.CreateUser(
        users_pb2.CreateUserRequest(username="traced"), metadata=(("x-request-id", "trace-42"),)
    )
    await call
    # In the trailers: they go out in the call's one final batch (calls.py).
    assert ("x-request-id", "trace-42") in tuple(await call.trailing_metadata())
    [line] = server_log.rpcs("CreateUser")
    assert line["request_id"] == "trace-42"
    assert line["code"] == "OK"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    assert line["logger"] == "users_service.calls"
    assert line["message"] == f"rpc /{SERVICE}/CreateUser OK"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])


async def test_a_failed_call_carries_its_request_id_in_the_trailers_too(stub: Any) -> None:
    call = stub.GetUser(users_pb2.GetUserRequest(id=0), metadata=(("x-request-id", "bad-1"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(caught.value.trailing_metadata())
    assert trailers["x-request-id"] == "bad-1"
    assert "grpc-status-details-bin" in trailers, "the BadRequest details were lost"


async def test_a_stream_sends_its_request_id_in_the_headers_before_the_first_message(
    stub: Any,
) -> None:
    await stub.CreateUser(users_pb2.CreateUserRequest(username="streamed"))
    call = stub.GetUsers(users_pb2.GetUsersRequest(), metadata=(("x-request-id", "str-1"),))
    assert ("x-request-id", "str-1") in tuple(await call.initial_metadata())
    assert [user.username async for user in call] == ["streamed"]
    assert ("x-request-id", "str-1") in tuple(await call.trailing_metadata())


async def test_request_id_is_generated_when_missing_and_logged_on_every_line_of_the_call(
    stub: Any, server_log: ServerLog
) -> None:
    async def two_rows() -> Any:
        yield users_pb2.CreateUserRequest(username="row1")
        yield users_pb2.CreateUserRequest(username="row2")

    call = stub.ImportUsers(two_rows())
    await call
    generated = dict(await call.trailing_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    of_call = [line for line in server_log.lines() if line.get("request_id") == generated]
    assert {line["message"] for line in of_call} >= {
        "import done",
        f"rpc /{SERVICE}/ImportUsers OK",
    }


async def test_error_calls_are_logged_with_their_code(stub: Any, server_log: ServerLog) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetUser(users_pb2.GetUserRequest(id=12345))
    [line] = server_log.rpcs("GetUser")
    assert line["code"] == "NOT_FOUND"


async def test_oversized_request_is_resource_exhausted(start_server: Any, admin_token: str) -> None:
    _, port = await start_server(max_message_bytes=64 * 1024)
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateUser(
                users_pb2.CreateUserRequest(username="big", display_name="x" * 100_000)
            )
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The server is unharmed and still serves normal calls.
        assert (await stub.CreateUser(users_pb2.CreateUserRequest(username="small"))).id


async def test_oversized_response_is_resource_exhausted_not_a_crash(
    start_server: Any, admin_token: str
) -> None:
    server, port = await start_server(max_message_bytes=16 * 1024)
    await server.store.create_users([NewUser(f"user{i:04}", email="") for i in range(400)])
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListUsers(users_pb2.ListUsersRequest(page_size=400))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len((await stub.ListUsers(users_pb2.ListUsersRequest(page_size=10))).users) == 10


async def test_deadline_expiry_ends_the_call_and_its_server_side_work(
    stub: Any, server: tuple[UsersServer, int], server_log: ServerLog
) -> None:
    call = stub.WatchUsers(users_pb2.WatchUsersRequest(), timeout=0.3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):  # bounded wait for the server to notice
        if server_log.rpcs("WatchUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = server_log.rpcs("WatchUsers")
    assert line["code"] in ("DEADLINE_EXCEEDED", "CANCELLED")
    assert server[0].feed.subscriber_count == 0, "the server-side subscription was not released"


@pytest.mark.slow
async def test_client_cancellation_stops_a_streaming_read(
    stub: Any, server: tuple[UsersServer, int], server_log: ServerLog
) -> None:
    # More users than flow-control windows hold: the server cannot have sent them all already.
    await server[0].store.create_users([NewUser(f"many{i:05}") for i in range(20000)])
    call = stub.GetUsers(users_pb2.GetUsersRequest())
    await call.read()
    call.cancel()
    for _ in range(100):
        if server_log.rpcs("GetUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = server_log.rpcs("GetUsers")
    assert line["code"] == "CANCELLED", "the server streamed on after the client cancelled"


def read_a_little_then_hang_up(port: int, token: str) -> None:
    with sync_channel(f"127.0.0.1:{port}", token=token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        stream = stub.GetUsers(users_pb2.GetUsersRequest(), metadata=(("x-request-id", "hangup"),))
        for count, _ in enumerate(stream):
            if count == 10:
                break


@pytest.mark.slow
async def test_a_client_hanging_up_mid_stream_is_logged_as_cancelled_with_its_request_id(
    server: tuple[UsersServer, int],
    server_log: ServerLog,
    caplog: pytest.LogCaptureFixture,
    admin_token: str,
) -> None:
    await server[0].store.create_users([NewUser(f"hang{i:05}") for i in range(20000)])
    await asyncio.to_thread(read_a_little_then_hang_up, server[1], admin_token)
    for _ in range(200):
        if server_log.rpcs("GetUsers"):
            break
        await asyncio.sleep(0.02)
    [line] = server_log.rpcs("GetUsers")
    assert (line["code"], line["request_id"]) == ("CANCELLED", "hangup")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_the_per_rpc_line_has_the_fields_and_order_of_every_other_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = RpcLog(logging.getLogger("users_service.calls"))
    logging.getLogger("users_service.calls").setLevel(logging.INFO)
    try:
        log.write(f"/{SERVICE}/GetUser", "NOT_FOUND", 0.12345, 'quote"and\\slash')
    finally:
        logging.getLogger("users_service.calls").setLevel(logging.NOTSET)
    [line] = capsys.readouterr().err.splitlines()
    record = logging.LogRecord("users_service.calls", logging.INFO, "", 0, "rpc %s %s", (), None)
    record.msg, record.args = "rpc %s %s", (f"/{SERVICE}/GetUser", "NOT_FOUND")
    record.request_id = 'quote"and\\slash'
    record.method, record.code, record.duration_ms = f"/{SERVICE}/GetUser", "NOT_FOUND", 0.123
    expected = json.loads(JsonFormatter().format(record))
    written = json.loads(line)
    assert list(written) == list(expected)
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in expected.items() if k != "time"
    }


def test_per_rpc_lines_reach_stderr_when_a_loop_closed_with_its_flush_unrun(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = RpcLog(logging.getLogger("users_service.calls"))
    logging.getLogger("users_service.calls").setLevel(logging.INFO)

    async def one_call(request_id: str) -> None:
        log.write(f"/{SERVICE}/GetUser", "OK", 0.1, request_id)

    def write_and_stop() -> None:
        log.write(f"/{SERVICE}/GetUser", "OK", 0.1, "first")  # schedules the flush...
        first.stop()  # ...which this loop then never runs

    first = asyncio.new_event_loop()
    try:
        first.call_soon(write_and_stop)
        first.run_forever()
        first.close()
        asyncio.run(one_call("second"))
    finally:
        logging.getLogger("users_service.calls").setLevel(logging.NOTSET)
    written = [json.loads(line)["request_id"] for line in capsys.readouterr().err.splitlines()]
    assert written == ["first", "second"]
