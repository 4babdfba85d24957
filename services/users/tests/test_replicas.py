"""Several users replicas on one PostgreSQL database: one set of users, one change feed, and
health that follows each replica's own connection to the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.waiting import wait_for_status
from users.v1 import users_pb2

from .conftest import Replica, ServerProcess
from .pg_server import PASSWORD, PostgresServer
from .test_health import NOT_SERVING, SERVICE, SERVING, check

# On PostgreSQL (see test_postgres_store), and one test starts a server process.
pytestmark = pytest.mark.slow


async def outcome(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_concurrent_creates_of_one_username_through_two_replicas_make_one_user(
    replicas: tuple[Replica, Replica],
) -> None:
    stubs = [replica.stub for replica in replicas]
    codes = await asyncio.gather(
        *(
            outcome(stubs[i % 2].CreateUser(users_pb2.CreateUserRequest(username=name)))
            for i, name in enumerate(["taken", "TAKEN", "Taken", "tAkEn"] * 4)
        )
    )
    assert codes.count(grpc.StatusCode.OK) == 1
    assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == 15
    listed = await stubs[0].ListUsers(users_pb2.ListUsersRequest())
    assert [user.username for user in listed.users] == ["taken"]


async def test_one_request_id_through_two_replicas_makes_one_user(
    replicas: tuple[Replica, Replica],
) -> None:
    request = users_pb2.CreateUserRequest(username="ada", request_id="client-retry-7")
    users = await asyncio.gather(*(replicas[i % 2].stub.CreateUser(request) for i in range(10)))
    assert len({user.id for user in users}) == 1
    assert len({user.etag for user in users}) == 1
    listed = await replicas[1].stub.ListUsers(users_pb2.ListUsersRequest())
    assert [user.id for user in listed.users] == [users[0].id]


async def test_watch_users_on_one_replica_sees_changes_made_through_another(
    replicas: tuple[Replica, Replica],
) -> None:
    on_a, on_b = replicas[0].stub, replicas[1].stub
    watch = on_a.WatchUsers(users_pb2.WatchUsersRequest())
    await watch.initial_metadata()  # subscribed: every later change reaches this watcher
    created = await on_b.CreateUser(users_pb2.CreateUserRequest(username="ada"))
    update = users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=created.id, display_name="Ada"), etag=created.etag
    )
    update.update_mask.paths.append("display_name")
    updated = await on_b.UpdateUser(update)
    await on_b.DeleteUser(users_pb2.DeleteUserRequest(id=created.id))
    events = [await asyncio.wait_for(watch.read(), 5) for _ in range(3)]
    assert [(e.type, e.user) for e in events] == [
        (users_pb2.USER_EVENT_TYPE_CREATED, created),
        (users_pb2.USER_EVENT_TYPE_UPDATED, updated),
        (users_pb2.USER_EVENT_TYPE_DELETED, updated),
    ]
    watch.cancel()


async def test_a_replica_is_not_serving_while_its_database_is_gone_and_serving_once_back(
    replicas: tuple[Replica, Replica], postgres_server: PostgresServer, postgres_url: str
) -> None:
    channel, stub = replicas[0].channel, replicas[0].stub
    database = postgres_url.rsplit("/", 1)[1]
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=SERVICE)
    )
    await wait_for_status(watch, SERVING)
    postgres_server.cut_off(database)
    try:
        await wait_for_status(watch, NOT_SERVING)
        assert await check(channel, "") == SERVING, "liveness must not depend on the database"
    finally:
        postgres_server.restore(database)
    await wait_for_status(watch, SERVING, within=15)
    watch.cancel()
    feed = stub.WatchUsers(users_pb2.WatchUsersRequest())
    await feed.initial_metadata()
    created = await stub.CreateUser(users_pb2.CreateUserRequest(username="back"))
    assert (await asyncio.wait_for(feed.read(), 10)).user == created
    feed.cancel()


def test_the_database_password_never_reaches_the_log(
    spawn_server: Callable[..., ServerProcess], postgres_url: str
) -> None:
    proc = spawn_server(postgres_url)
    line = proc.wait_for_log(r'"message": "store open"')
    assert "userstack:***@127.0.0.1" in line
    assert not any(PASSWORD in logged for logged in proc.lines)


async def test_open_watches_end_unavailable_when_the_change_feed_is_lost(
    replicas: tuple[Replica, Replica], postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Changes committed while the LISTEN connection is down are never heard: a watch that went
    on as if nothing happened would silently miss them, so it ends and the client re-lists."""
    on_a, on_b = replicas[0].stub, replicas[1].stub
    watch = on_a.WatchUsers(users_pb2.WatchUsersRequest())
    await watch.initial_metadata()
    before = await on_b.CreateUser(users_pb2.CreateUserRequest(username="before"))
    assert (await asyncio.wait_for(watch.read(), 5)).user == before
    with postgres_server.admin() as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (postgres_url.rsplit("/", 1)[1],),
        ).fetchone()
    assert killed == (2,)  # each replica's feed
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await asyncio.wait_for(watch.read(), 5)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "change feed" in (ended.value.details() or "")
    # As a client would: watch again (refused UNAVAILABLE until the feed is back), then re-list.
    for attempt in range(100):
        again = on_a.WatchUsers(users_pb2.WatchUsersRequest())
        after = await on_b.CreateUser(users_pb2.CreateUserRequest(username=f"after{attempt}"))
        seen = await first_user(again)
        if seen != grpc.StatusCode.UNAVAILABLE:
            break
        await asyncio.sleep(0.1)
    assert seen == after
    again.cancel()


async def first_user(watch: Any) -> Any:
    """The user of the watch's first event, or the status code the watch ended with."""
    try:
        return (await asyncio.wait_for(watch.read(), 5)).user
    except grpc.aio.AioRpcError as error:
        return error.code()
