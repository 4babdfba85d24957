"""ExportUsers: every user (or a prefix's) in id order, many a message, from a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from testkit.channels import aio_channel
from testkit.metrics import value
from users.v1 import users_pb2, users_pb2_grpc
from users_service.server import UsersServer
from users_service.store import NewUser

from .conftest import ServerFactory
from .test_metrics import settled
from .test_unary import field_violations


async def seed(server: UsersServer, names: list[str]) -> list[int]:
    outcomes = await server.store.create_users(
        [NewUser(name, email=f"{name}@example.com", display_name=name.title()) for name in names]
    )
    return [outcome.user.id for outcome in outcomes if outcome.user is not None]


async def export(stub: Any, **request: Any) -> list[users_pb2.UserBatch]:
    return [batch async for batch in stub.ExportUsers(users_pb2.ExportUsersRequest(**request))]


def usernames(batches: list[users_pb2.UserBatch]) -> list[str]:
    return [user.username for batch in batches for user in batch.users]


async def test_export_users_sends_every_user_in_id_order_as_get_users_does(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"user{i:05}" for i in range(1234)])
    batches = await export(stub)
    assert [len(batch.users) for batch in batches] == [500, 500, 234]  # the default size
    exported = [user for batch in batches for user in batch.users]
    # The same users, field for field (timestamps included), as GetUsers sends one by one.
    assert exported == [user async for user in stub.GetUsers(users_pb2.GetUsersRequest())]
    assert [user.id for user in exported] == sorted(user.id for user in exported)


async def test_export_users_batch_size_is_capped_and_an_exact_multiple_ends_cleanly(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], [f"user{i:05}" for i in range(2500)])
    assert [len(b.users) for b in await export(stub, batch_size=5000)] == [1000, 1000, 500]
    assert [len(b.users) for b in await export(stub, batch_size=1250)] == [1000, 1000, 500]
    assert [len(b.users) for b in await export(stub, batch_size=625)] == [625] * 4
    assert [len(b.users) for b in await export(stub, batch_size=1)][:3] == [1, 1, 1]


async def test_export_users_of_nobody_is_an_empty_stream_ending_ok(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    call = stub.ExportUsers(users_pb2.ExportUsersRequest())
    assert [batch async for batch in call] == []
    assert await call.code() == grpc.StatusCode.OK
    await seed(server[0], ["ada"])
    assert await export(stub, username_prefix="zed") == []


async def test_export_users_filters_by_prefix_case_insensitively_and_resumes_after_an_id(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    names = [f"{kind}{i:03}" for i in range(300) for kind in ("ann", "bob")]
    ids = dict(zip(names, await seed(server[0], names), strict=True))
    anns = [name for name in names if name.startswith("ann")]
    assert usernames(await export(stub, username_prefix="ANN", batch_size=7)) == anns
    assert usernames(await export(stub, username_prefix="ann1")) == anns[100:200]
    assert usernames(await export(stub, after_id=ids["bob149"])) == names[300:]
    resumed = await export(stub, username_prefix="bob", after_id=ids["ann250"])
    assert usernames(resumed) == [f"bob{i:03}" for i in range(250, 300)]


async def test_export_users_refuses_bad_input_naming_every_field(stub: Any) -> None:
    request = users_pb2.ExportUsersRequest(username_prefix="no spaces", batch_size=-1, after_id=-2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(stub, **{f.name: v for f, v in request.ListFields()})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"username_prefix", "batch_size", "after_id"}
    for wrong in ({"username_prefix": "x" * 33}, {"username_prefix": "%"}, {"batch_size": -5}):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(stub, **wrong)
        assert set(field_violations(caught.value)) == set(wrong)


async def test_export_users_needs_a_token(
    anonymous_channel: Any, server: tuple[UsersServer, int]
) -> None:
    await seed(server[0], ["ada"])
    stub = users_pb2_grpc.UserServiceStub(anonymous_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(stub)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_export_calls_and_their_store_pages_are_measured(
    start_server: ServerFactory, admin_token: str
) -> None:
    server, port = await start_server(metrics_listen_address="127.0.0.1:0")
    await seed(server, [f"user{i:05}" for i in range(1500)])
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        assert len(await export(stub, batch_size=1000)) == 2
        with pytest.raises(grpc.aio.AioRpcError):
            await export(stub, batch_size=-1)
    samples = await settled(server)
    method = "users.v1.UserService/ExportUsers"
    calls = "grpc_server_call_duration_seconds_count"
    assert value(samples, calls, grpc_method=method, grpc_status="OK") == 1
    assert value(samples, calls, grpc_method=method, grpc_status="INVALID_ARGUMENT") == 1
    pages = "db_client_operation_duration_seconds_count"
    assert value(samples, pages, db_system_name="sqlite", db_operation_name="export_page") == 2


@pytest.mark.slow
async def test_an_export_the_drain_outlasts_ends_unavailable_naming_where_to_resume(
    stub: Any, server: tuple[UsersServer, int]
) -> None:
    # ~8 MB of users: more than grpc buffers ahead of a slow reader (its flow-control windows).
    total = 30_000
    await server[0].store.create_users(
        [NewUser(f"user{i:05}", email=f"{'e' * 200}@example.com") for i in range(total)]
    )
    call = stub.ExportUsers(users_pb2.ExportUsersRequest(batch_size=100))
    last_id = (await call.read()).users[-1].id
    drain = asyncio.create_task(server[0].drain(grace=1.5))

    async def read_slowly() -> None:
        nonlocal last_id
        while (batch := await call.read()) != grpc.aio.EOF:
            last_id = batch.users[-1].id
            await asyncio.sleep(0.01)  # 300 batches take longer than the grace

    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await read_slowly()
    await drain
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value.details()
    # Ours, naming the last id the client received: it resumes there on another replica.
    assert f"resume with after_id {last_id}" in (ended.value.details() or "")
    assert 100 < last_id < total
