"""The server's limits: write and import rates, the import size, WatchUsers slots, keepalive."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import grpc
import pytest
from plumbing.settings import ConfigError
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.config import Settings
from users_service.limits import Limits

from .conftest import ServerFactory
from .listening import eventually


def create(name: str) -> users_pb2.CreateUserRequest:
    return users_pb2.CreateUserRequest(username=name)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_writes_beyond_the_callers_rate_end_resource_exhausted_with_retry_after(
    start_server: ServerFactory,
    admin_token: str,
) -> None:
    _, port = await start_server(limits=Limits(writes_per_second=0.5, write_burst=2))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        await stub.CreateUser(create("one"))
        await stub.CreateUser(create("two"))
        error = await refused(stub.CreateUser(create("three")))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.trailing_metadata()["users-limit"] == "rate"
        assert error.trailing_metadata()["retry-after"] == "2"
        assert "writes: rate limit reached" in (error.details() or "")
        # Reads are not limited.
        assert (await stub.GetUser(users_pb2.GetUserRequest(username="one"))).username == "one"


async def test_imports_beyond_the_callers_rate_are_refused(
    start_server: ServerFactory, admin_token: str
) -> None:
    _, port = await start_server(limits=Limits(imports_per_minute=1, import_burst=1))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        assert (await stub.ImportUsers(iter([create("imp")]))).created_count == 1
        error = await refused(stub.ImportUsers(iter([create("imq")])))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.trailing_metadata()["retry-after"] == "60"


async def test_an_import_past_its_row_cap_ends_resource_exhausted_keeping_the_rows_before(
    start_server: ServerFactory,
    admin_token: str,
) -> None:
    _, port = await start_server(limits=Limits(max_import_rows=5))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        error = await refused(stub.ImportUsers(iter([create(f"row{i}") for i in range(8)])))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 5 rows" in (error.details() or "")
        listed = await stub.ListUsers(users_pb2.ListUsersRequest())
        assert [user.username for user in listed.users] == [f"row{i}" for i in range(5)]


async def test_watchers_beyond_the_cap_end_resource_exhausted(
    start_server: ServerFactory, admin_token: str
) -> None:
    server, port = await start_server(limits=Limits(max_watchers=2))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        watches = [stub.WatchUsers(users_pb2.WatchUsersRequest()) for _ in range(2)]
        for watch in watches:
            await watch.initial_metadata()
        third = stub.WatchUsers(users_pb2.WatchUsersRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in third:
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.trailing_metadata()["users-limit"] == "subscribers"
        assert server.feed.subscriber_count == 2
        watches[0].cancel()
        await eventually(lambda: server.feed.subscriber_count == 1, within=5)
        again = stub.WatchUsers(users_pb2.WatchUsersRequest())
        await again.initial_metadata()
        assert server.feed.subscriber_count == 2
        again.cancel()
        watches[1].cancel()


WATCHER = textwrap.dedent(
    """
    import sys, grpc
    from users.v1 import users_pb2, users_pb2_grpc
    channel = grpc.insecure_channel(sys.argv[1])
    token = (("authorization", "Bearer " + sys.argv[2]),)
    stub = users_pb2_grpc.UserServiceStub(channel)
    stream = stub.WatchUsers(users_pb2.WatchUsersRequest(), metadata=token)
    stream.initial_metadata()
    print("watching", flush=True)
    for event in stream:
        pass
    """
)


async def test_a_stopped_watcher_is_dropped_within_keepalive_and_its_timeout(
    start_server: ServerFactory,
    admin_token: str,
) -> None:
    limits = Limits(keepalive_seconds=1, keepalive_timeout_seconds=1)
    server, port = await start_server(limits=limits)
    command = [sys.executable, "-c", WATCHER, f"127.0.0.1:{port}", admin_token]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as watcher:  # noqa: ASYNC220
        try:
            assert watcher.stdout is not None
            line = await asyncio.to_thread(watcher.stdout.readline)
            assert line == "watching\n"
            assert server.feed.subscriber_count == 1
            os.kill(watcher.pid, signal.SIGSTOP)
            started = asyncio.get_running_loop().time()
            # keepalive 1 s + timeout 1 s, plus grpc's timer jitter and slack.
            await eventually(lambda: server.feed.subscriber_count == 0, within=6)
            dropped_after = asyncio.get_running_loop().time() - started
            print(f"stopped watcher dropped after {dropped_after:.2f} s")
        finally:
            watcher.kill()
            os.kill(watcher.pid, signal.SIGCONT)


async def test_a_quiet_watcher_that_answers_pings_is_kept(
    start_server: ServerFactory, admin_token: str
) -> None:
    limits = Limits(keepalive_seconds=0.5, keepalive_timeout_seconds=0.5)
    server, port = await start_server(limits=limits)
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        watch = users_pb2_grpc.UserServiceStub(channel).WatchUsers(users_pb2.WatchUsersRequest())
        await watch.initial_metadata()
        await asyncio.sleep(3)  # several keepalive rounds with nothing to send
        assert server.feed.subscriber_count == 1
        watch.cancel()


def test_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"USERS_MAX_WATCHERS": "7", "USERS_WRITES_PER_SECOND": "0", "USERS_REFLECTION": "false"}
    )
    assert settings.limits.max_watchers == 7
    assert settings.limits.writes_per_second == 0  # no limit
    assert settings.reflection is False
    with pytest.raises(ConfigError, match="USERS_MAX_REQUEST_BYTES"):
        Settings.from_env({"USERS_MAX_REQUEST_BYTES": "12"})


async def test_the_server_purges_idempotency_keys_after_their_ttl(
    start_server: ServerFactory,
    admin_token: str,
) -> None:
    _, port = await start_server(limits=Limits(idempotency_key_ttl_seconds=1))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        keyed = users_pb2.CreateUserRequest(username="keyed", request_id="once")
        first = await stub.CreateUser(keyed)
        assert (await stub.CreateUser(keyed)).id == first.id  # a replay within the TTL
        other = users_pb2.CreateUserRequest(username="other", request_id="once")
        codes = []
        for _ in range(60):  # purged within TTL + TTL / 2 (the purge interval)
            try:
                created = await stub.CreateUser(other)
                break
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())  # still remembered: a reused key
                await asyncio.sleep(0.1)
        assert created.username == "other"
        assert set(codes) <= {grpc.StatusCode.INVALID_ARGUMENT}
