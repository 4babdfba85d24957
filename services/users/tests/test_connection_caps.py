"""The server's caps on calls in flight, streams per connection and connections, each set small
by its setting, against a real server on a real port (docs/limits.md, what a client sees)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from users.v1 import users_pb2, users_pb2_grpc
from users_service.limits import Limits

from .conftest import ServerFactory

pytestmark = pytest.mark.timeout(60)

WATCH = users_pb2.WatchUsersRequest()


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[grpc.aio.Channel]:
    """A channel with a TCP connection of its own (grpc shares one between channels to the same
    target unless told not to)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        yield channel


def caller(channel: grpc.aio.Channel, token: str) -> Callable[..., Any]:
    """stub.Method(request, **kwargs) with the admin's token on every call."""
    stub = users_pb2_grpc.UserServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)

    def call(method: str, request: Any, **kwargs: Any) -> Any:
        return getattr(stub, method)(request, metadata=metadata, **kwargs)

    return call


async def get_user(call: Callable[..., Any], **kwargs: Any) -> users_pb2.User:
    user: users_pb2.User = await call("GetUser", users_pb2.GetUserRequest(username="ada"), **kwargs)
    return user


async def watching(call: Callable[..., Any], count: int) -> list[Any]:
    """`count` WatchUsers calls in flight (each past its headers: the server holds it)."""
    watches = [call("WatchUsers", WATCH) for _ in range(count)]
    for watch in watches:
        await watch.initial_metadata()
    return watches


async def health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service="users.v1.UserService"))
    return int(reply.status)


async def test_calls_beyond_the_concurrent_rpc_cap_end_resource_exhausted_the_rest_succeed(
    start_server: ServerFactory, admin_token: str
) -> None:
    server, port = await start_server(
        limits=Limits(max_concurrent_rpcs=3), health_listen_address="127.0.0.1:0"
    )
    async with connection(port) as channel, connection(port) as other:
        call = caller(channel, admin_token)
        await call("CreateUser", users_pb2.CreateUserRequest(username="ada"))
        watches = await watching(call, 3)
        for conn in (channel, other):  # the cap is the server's, whatever the connection
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await get_user(caller(conn, admin_token), timeout=5)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert caught.value.details() == "Concurrent RPC limit exceeded!"
        # A health check on the API port is a call like any other; the health-only port (the
        # kubelet's) is a server of its own, outside the cap.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health(other)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        async with connection(server.health_port) as probe:
            assert await health(probe) == health_pb2.HealthCheckResponse.SERVING
        watches[0].cancel()
        # A slot is free once the server has seen the cancel: calls within the cap succeed.
        await eventually_ok(lambda: get_user(call, timeout=5))
        assert (await get_user(caller(other, admin_token), timeout=5)).username == "ada"
        for watch in watches[1:]:
            watch.cancel()
        await eventually_ok(lambda: health(other))
        assert await health(other) == health_pb2.HealthCheckResponse.SERVING


async def eventually_ok(make_call: Callable[[], Any], within: float = 5) -> Any:
    """The call's reply once it succeeds (RESOURCE_EXHAUSTED while its slot is still held)."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await make_call()
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
            await asyncio.sleep(0.05)


async def test_streams_beyond_a_connections_cap_wait_for_a_free_one_another_connection_is_served(
    start_server: ServerFactory, admin_token: str
) -> None:
    _, port = await start_server(limits=Limits(max_streams_per_connection=2))
    async with AsyncExitStack() as stack:
        channel = await stack.enter_async_context(connection(port))
        call = caller(channel, admin_token)
        # The first call: the server's SETTINGS (with the cap) have reached the client.
        await call("CreateUser", users_pb2.CreateUserRequest(username="ada"))
        watches = await watching(call, 2)
        # The client holds a third stream until one closes (HTTP/2: it may not open more than
        # the server's SETTINGS_MAX_CONCURRENT_STREAMS): no reply, not a refusal.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get_user(call, timeout=1)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        other = await stack.enter_async_context(connection(port))
        assert (await get_user(caller(other, admin_token), timeout=5)).username == "ada"
        held = get_user(call, timeout=10)
        watches[0].cancel()
        assert (await held).username == "ada"
        watches[1].cancel()


async def test_connections_beyond_the_cap_are_refused_the_open_ones_keep_working(
    start_server: ServerFactory, admin_token: str
) -> None:
    _, port = await start_server(limits=Limits(max_connections=2))
    async with connection(port) as first:
        await caller(first, admin_token)("CreateUser", users_pb2.CreateUserRequest(username="ada"))
        async with connection(port) as second:
            assert (await get_user(caller(second, admin_token), timeout=5)).username == "ada"
            async with connection(port) as third:
                # grpc closes the socket as it accepts it: no HTTP/2, no status from the server.
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await get_user(caller(third, admin_token), timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "Socket closed" in (caught.value.details() or "")
            assert (await get_user(caller(first, admin_token), timeout=5)).username == "ada"
            assert await health(second) == health_pb2.HealthCheckResponse.SERVING
        # One closed, a new one is taken (once the server has seen the close).
        for _ in range(50):
            if await served(port, admin_token):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("no new connection was served after one of the two closed")


async def served(port: int, token: str) -> bool:
    """Whether a new connection gets a GetUser answered."""
    async with connection(port) as fresh:
        try:
            await get_user(caller(fresh, token), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
    return True
