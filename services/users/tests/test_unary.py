"""CreateUser, GetUser, UpdateUser and DeleteUser against a real server and SQLite file."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from users.v1 import users_pb2


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried by an error, by field."""
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status in the trailers"
    violations: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        assert detail.Unpack(bad_request)
        violations.update((v.field, v.description) for v in bad_request.field_violations)
    return violations


async def create(stub: Any, username: str, **fields: str) -> users_pb2.User:
    user: users_pb2.User = await stub.CreateUser(
        users_pb2.CreateUserRequest(username=username, **fields)
    )
    return user


async def test_create_user_returns_the_stored_user(stub: Any) -> None:
    user = await create(stub, "Ada.Lovelace", email="ada@example.com", display_name="Ada L")
    assert user.id > 0
    assert user.username == "ada.lovelace"
    assert (user.email, user.display_name) == ("ada@example.com", "Ada L")
    assert user.create_time == user.update_time
    assert user.create_time.seconds > 0
    assert user.etag
    assert await stub.GetUser(users_pb2.GetUserRequest(id=user.id)) == user


async def test_ids_increase_with_creation_order(stub: Any) -> None:
    first = await create(stub, "first")
    second = await create(stub, "second")
    assert second.id > first.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "a" * 33}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "émile"}, "username"),
        ({"username": "okname", "email": "not-an-email"}, "email"),
        ({"username": "okname", "email": "a@" + "b" * 250 + ".com"}, "email"),
        ({"username": "okname", "display_name": "x" * 65}, "display_name"),
        ({"username": "okname", "display_name": "bad\x07bell"}, "display_name"),
        ({"username": "okname", "request_id": "r" * 129}, "request_id"),
    ],
)
async def test_create_user_rejects_invalid_fields_with_bad_request_details(
    stub: Any, fields: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateUser(users_pb2.CreateUserRequest(**fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


async def test_create_user_rejects_duplicate_username_case_insensitively(stub: Any) -> None:
    await create(stub, "grace")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, "GRACE")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_create_user_with_same_request_id_returns_the_first_user(stub: Any) -> None:
    first = await create(stub, "linus", email="l@example.com", request_id="req-1")
    again = await create(stub, "linus", email="l@example.com", request_id="req-1")
    assert again == first
    listed = await stub.ListUsers(users_pb2.ListUsersRequest())
    assert [user.username for user in listed.users] == ["linus"]


async def test_create_user_rejects_request_id_reused_for_another_user(stub: Any) -> None:
    await create(stub, "linus", request_id="req-2")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, "torvalds", request_id="req-2")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(caught.value)


async def test_create_user_replay_after_delete_is_not_found(stub: Any) -> None:
    user = await create(stub, "ghost", request_id="req-3")
    await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stub, "ghost", request_id="req-3")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_get_user_by_username_is_case_insensitive(stub: Any) -> None:
    user = await create(stub, "barbara")
    assert await stub.GetUser(users_pb2.GetUserRequest(username="BarBara")) == user


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (users_pb2.GetUserRequest(id=999), grpc.StatusCode.NOT_FOUND),
        (users_pb2.GetUserRequest(username="nobody"), grpc.StatusCode.NOT_FOUND),
        (users_pb2.GetUserRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (users_pb2.GetUserRequest(id=-1), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_get_user_errors(stub: Any, request_: users_pb2.GetUserRequest, code: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetUser(request_)
    assert caught.value.code() == code


async def test_batch_get_users_answers_found_users_in_the_order_asked(stub: Any) -> None:
    ada, bob = await create(stub, "ada"), await create(stub, "bob")
    asked = users_pb2.BatchGetUsersRequest(ids=[bob.id, 424242, ada.id, bob.id])
    reply = await stub.BatchGetUsers(asked)
    assert list(reply.users) == [bob, ada]
    assert not (await stub.BatchGetUsers(users_pb2.BatchGetUsersRequest())).users


@pytest.mark.parametrize(
    ("ids", "fields"),
    [
        ([1, 0, 2, -5], {"ids[1]", "ids[3]"}),
        ([-1] * 50, {f"ids[{i}]" for i in range(10)}),  # the first ten, not fifty
        (list(range(1, 1002)), {"ids"}),
    ],
)
async def test_batch_get_users_refuses_bad_ids_by_position(
    stub: Any, ids: list[int], fields: set[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.BatchGetUsers(users_pb2.BatchGetUsersRequest(ids=ids))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == fields


@pytest.mark.slow
async def test_batch_get_users_reads_the_maximum_of_a_thousand(stub: Any) -> None:
    made = await asyncio.gather(*(create(stub, f"user{i:04}") for i in range(1000)))
    reply = await stub.BatchGetUsers(users_pb2.BatchGetUsersRequest(ids=[u.id for u in made]))
    assert list(reply.users) == made


def update(user_id: int, paths: list[str], etag: str = "", **fields: str) -> Any:
    user = users_pb2.User(id=user_id)
    for name, value in fields.items():
        setattr(user, name, value)
    return users_pb2.UpdateUserRequest(
        user=user,
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        etag=etag,
    )


async def test_update_user_changes_only_masked_fields(stub: Any) -> None:
    user = await create(stub, "alan", email="alan@example.com", display_name="Alan")
    changed = await stub.UpdateUser(
        update(user.id, ["display_name"], etag=user.etag, display_name="A. Turing", email="x@y.z")
    )
    assert changed.display_name == "A. Turing"
    assert changed.email == "alan@example.com"
    assert changed.etag != user.etag
    assert changed.create_time == user.create_time
    assert changed.update_time.ToDatetime() >= user.update_time.ToDatetime()
    renamed = await stub.UpdateUser(update(user.id, ["username"], username="Turing"))
    assert renamed.username == "turing"


async def test_update_user_with_stale_etag_is_failed_precondition(stub: Any) -> None:
    user = await create(stub, "edsger")
    await stub.UpdateUser(update(user.id, ["display_name"], display_name="E. W. D."))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(update(user.id, ["display_name"], etag=user.etag, display_name="x"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_update_user_to_taken_username_is_already_exists(stub: Any) -> None:
    await create(stub, "taken")
    user = await create(stub, "other")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(update(user.id, ["username"], username="TAKEN"))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_update_missing_user_is_not_found(stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(update(4242, ["display_name"], display_name="x"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("paths", "field"),
    [([], "update_mask"), (["id"], "update_mask.paths[0]"), (["etag"], "update_mask.paths[0]")],
)
async def test_update_user_rejects_bad_field_masks(stub: Any, paths: list[str], field: str) -> None:
    user = await create(stub, "masked")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(update(user.id, paths))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


async def test_update_user_validates_new_values(stub: Any) -> None:
    user = await create(stub, "valid")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateUser(update(user.id, ["email"], email="nope"))
    assert "user.email" in field_violations(caught.value)


async def test_delete_user_removes_it_and_honours_etag(stub: Any) -> None:
    user = await create(stub, "doomed")
    changed = await stub.UpdateUser(update(user.id, ["display_name"], display_name="D"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id, etag=user.etag))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id, etag=changed.etag))
    for request in (
        users_pb2.GetUserRequest(id=user.id),
        users_pb2.GetUserRequest(username="doomed"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetUser(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_deleted_ids_are_never_reused(stub: Any) -> None:
    user = await create(stub, "once")
    await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id))
    assert (await create(stub, "twice")).id > user.id


async def test_concurrent_creates_of_one_username_make_exactly_one_user(stub: Any) -> None:
    results = await asyncio.gather(
        *(create(stub, "race" if i % 2 else "RACE") for i in range(20)), return_exceptions=True
    )
    made = [r for r in results if isinstance(r, users_pb2.User)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) == 1
    assert {error.code() for error in refused} == {grpc.StatusCode.ALREADY_EXISTS}
    assert len(refused) == 19


async def test_concurrent_creates_each_get_their_own_user(stub: Any) -> None:
    made = await asyncio.gather(*(create(stub, f"crowd{i:02}") for i in range(50)))
    assert [user.username for user in made] == [f"crowd{i:02}" for i in range(50)]
    assert len({user.id for user in made}) == 50
