"""GetUsers, ImportUsers, LookupUsers and WatchUsers: the three streaming kinds of RPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.calls import CallWrapping
from users_service.drain import LameDuck
from users_service.events import Broadcaster, SubscriberTooSlow
from users_service.server import UsersServer
from users_service.servicer import UserService
from users_service.store import NewUser
from users_service.store.sqlite import SqliteUserStore


async def seed(server: UsersServer, names: list[str]) -> list[int]:
    outcomes = await server.store.create_users([NewUser(name) for name in names])
    return [outcome.user.id for outcome in outcomes if outcome.user is not None]


async def test_get_users_streams_named_users_ids_then_usernames_skipping_misses(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    ids = await seed(server[0], ["ada", "bob", "cy"])
    request = users_pb2.GetUsersRequest(
        ids=[ids[2], 9999, ids[0], -5], usernames=["BOB", "zed", ""]
    )
    streamed = [user.username async for user in stub.GetUsers(request)]
    assert streamed == ["cy", "ada", "bob"]


async def test_get_users_without_names_streams_everyone_in_id_order(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    names = [f"user{i:05}" for i in range(1234)]
    await seed(server[0], names)
    streamed = [user async for user in stub.GetUsers(users_pb2.GetUsersRequest())]
    assert [user.username for user in streamed] == names
    assert [user.id for user in streamed] == sorted(user.id for user in streamed)


@pytest.mark.slow
async def test_a_stream_the_drain_outlasts_ends_unavailable_not_cancelled(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    total = 30_000  # several seconds of streaming: longer than the grace below
    await seed(server[0], [f"user{i:05}" for i in range(total)])
    call = stub.GetUsers(users_pb2.GetUsersRequest())
    received = 0 if await call.read() == grpc.aio.EOF else 1
    drain = asyncio.create_task(server[0].drain(grace=1.5))

    async def read_on() -> None:
        nonlocal received
        while await call.read() != grpc.aio.EOF:
            received += 1

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await read_on()
    await drain
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value.details()
    # Not grpc's own "Cancelling all calls" as the grace runs out: ours, with where to resume.
    assert f"stopped before the stream ended (after id {received})" in ended.value.details()
    assert 1 < received < total


async def rows(requests: list[users_pb2.CreateUserRequest]) -> AsyncIterator[Any]:
    for request in requests:
        yield request


async def test_import_users_summarises_created_existing_and_rejected(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], ["already"])
    requests = [
        users_pb2.CreateUserRequest(username="New.One", email="n@example.com"),
        users_pb2.CreateUserRequest(username="ALREADY"),
        users_pb2.CreateUserRequest(username="x"),
        users_pb2.CreateUserRequest(username="mail", email="nope"),
        users_pb2.CreateUserRequest(username="new.one"),
        users_pb2.CreateUserRequest(username="keyed", request_id="k1"),
        users_pb2.CreateUserRequest(username="keyed", request_id="k1"),
        users_pb2.CreateUserRequest(username="other", request_id="k1"),
        *[users_pb2.CreateUserRequest(username=f"bulk{i:04}") for i in range(600)],
    ]
    summary = await stub.ImportUsers(rows(requests))
    assert (summary.created_count, summary.existing_count, summary.rejected_count) == (602, 3, 3)
    rejected = {(r.index, r.username, r.field) for r in summary.rejections}
    assert rejected == {(2, "x", "username"), (3, "mail", "email"), (7, "other", "request_id")}
    assert all(r.reason for r in summary.rejections)
    users = [user async for user in stub.GetUsers(users_pb2.GetUsersRequest())]
    assert len(users) == 1 + 602


async def test_import_users_keeps_rows_committed_before_the_client_goes_away(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    sent = asyncio.Event()

    async def then_vanish() -> AsyncIterator[Any]:
        for i in range(5):
            yield users_pb2.CreateUserRequest(username=f"kept{i}")
        sent.set()
        await asyncio.Event().wait()  # never half-closes

    call = stub.ImportUsers(then_vanish())
    await sent.wait()
    for _ in range(200):  # wait (bounded) until the rows are committed
        if len(await server[0].store.list_users(0, 10, "kept")) == 5:
            break
        await asyncio.sleep(0.02)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    kept = await stub.ListUsers(users_pb2.ListUsersRequest(username_prefix="kept"))
    assert [user.username for user in kept.users] == [f"kept{i}" for i in range(5)]


async def test_lookup_users_answers_each_lookup_in_order_without_ending_on_a_miss(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    ids = await seed(server[0], ["ann", "ben"])
    call = stub.LookupUsers()
    lookups = [
        users_pb2.LookupUsersRequest(id=ids[1]),
        users_pb2.LookupUsersRequest(username="nobody"),
        users_pb2.LookupUsersRequest(),
        users_pb2.LookupUsersRequest(username="ANN"),
        users_pb2.LookupUsersRequest(id=777),
    ]
    answers = []
    for lookup in lookups:  # one at a time: each answer arrives before the next question
        await call.write(lookup)
        answers.append(await call.read())
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    assert [answer.request for answer in answers] == lookups
    assert answers[0].user.username == "ben"
    assert answers[3].user.username == "ann"
    assert [a.error.code for a in answers if a.HasField("error")] == [5, 3, 5]
    assert await call.code() == grpc.StatusCode.OK


async def watch_started(server: UsersServer, call: Any) -> None:
    # The headers come after the subscription: nothing to poll for.
    await call.initial_metadata()
    assert server.feed.subscriber_count == 1


async def test_watch_users_streams_created_updated_and_deleted_events(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    call = stub.WatchUsers(users_pb2.WatchUsersRequest())
    await watch_started(server[0], call)
    user = await stub.CreateUser(users_pb2.CreateUserRequest(username="watched"))
    await stub.UpdateUser(
        users_pb2.UpdateUserRequest(
            user=users_pb2.User(id=user.id, display_name="W"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id))
    await stub.ImportUsers(rows([users_pb2.CreateUserRequest(username="imported")]))
    events = [await call.read() for _ in range(4)]
    assert [event.type for event in events] == [
        users_pb2.USER_EVENT_TYPE_CREATED,
        users_pb2.USER_EVENT_TYPE_UPDATED,
        users_pb2.USER_EVENT_TYPE_DELETED,
        users_pb2.USER_EVENT_TYPE_CREATED,
    ]
    assert events[0].user == user
    assert events[1].user.display_name == "W"
    assert events[2].user.id == user.id
    assert events[3].user.username == "imported"
    assert all(event.event_time.seconds > 0 for event in events)
    call.cancel()


class _ChangeAsHeadersGo(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Publishes a change at the very moment WatchUsers sends its initial metadata."""

    def __init__(self, feed: Broadcaster) -> None:
        self._feed = feed

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if not details.method.endswith("/WatchUsers"):
            return handler
        feed, inner = self._feed, handler.unary_stream

        class Context:
            def __init__(self, context: Any) -> None:
                self._context = context

            def __getattr__(self, name: str) -> Any:
                return getattr(self._context, name)

            async def send_initial_metadata(self, metadata: Any) -> None:
                feed.publish(users_pb2.UserEvent(user=users_pb2.User(id=7)))
                await self._context.send_initial_metadata(metadata)

        async def watch(request: Any, context: Any) -> AsyncIterator[Any]:
            async for event in inner(request, Context(context)):
                yield event

        return grpc.unary_stream_rpc_method_handler(
            watch, handler.request_deserializer, handler.response_serializer
        )


async def test_watch_users_subscribes_before_sending_its_headers(
    tmp_path: Path, admin_token: str
) -> None:
    store, feed = SqliteUserStore(tmp_path / "users.db"), Broadcaster()
    await store.open()
    server = grpc.aio.server(interceptors=[_ChangeAsHeadersGo(feed)])
    wrapped = CallWrapping(LameDuck(), "/users.v1.").server(server)
    users_pb2_grpc.add_UserServiceServicer_to_server(UserService(store, feed), wrapped)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
            call = users_pb2_grpc.UserServiceStub(channel).WatchUsers(
                users_pb2.WatchUsersRequest(), timeout=2
            )
            assert (await call.read()).user.id == 7
            call.cancel()
    finally:
        await server.stop(0)
        await store.close()


@pytest.mark.slow
async def test_watch_users_ends_ok_when_the_server_drains(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    call = stub.WatchUsers(users_pb2.WatchUsersRequest())
    await watch_started(server[0], call)
    await asyncio.wait_for(server[0].drain(grace=5), timeout=3)
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.slow
async def test_a_watch_that_arrives_while_the_server_drains_is_sent_elsewhere(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server[1]}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await health.read()).status == health_pb2.HealthCheckResponse.SERVING
        drain = asyncio.create_task(server[0].drain(grace=5))
        # NOT_SERVING: the feed is closed, but for a moment calls are still served, not refused.
        assert (await health.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anext(aiter(stub.WatchUsers(users_pb2.WatchUsersRequest())))
        await drain
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "watch on another replica" in refused.value.details()


async def test_a_slow_subscriber_is_dropped_without_blocking_the_writer() -> None:
    feed = Broadcaster(queue_size=3)
    slow, fast = feed.subscribe(), feed.subscribe()
    fast_events = fast.events()
    for i in range(3):
        feed.publish(users_pb2.UserEvent(user=users_pb2.User(id=i + 1)))
        assert (await anext(fast_events)).user.id == i + 1
    feed.publish(users_pb2.UserEvent(user=users_pb2.User(id=4)))  # slow's queue is full: dropped
    assert feed.subscriber_count == 1
    with pytest.raises(SubscriberTooSlow):
        await anext(slow.events())
    assert (await anext(fast_events)).user.id == 4
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await anext(fast_events)
