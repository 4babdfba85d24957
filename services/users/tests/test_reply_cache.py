"""GetUser's reply cache (reply_cache.py) is exact: every read through a real server answers
what the store holds, after this server's writes, another process's on the same SQLite file,
and for members and admins alike; and it stays within its bound."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.config import Settings
from users_service.reply_cache import ReplyCache, reply_of
from users_service.server import UsersServer
from users_service.store import ChangeKind, UserChange, UserRecord

from .accounts_kit import Accounts
from .conftest import ServerFactory, ServerProcess

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def record(user_id: int, email: str = "ada@example.com", etag: str = "e1") -> UserRecord:
    return UserRecord(user_id, f"user{user_id}", email, "Ada", NOW, NOW, etag)


# The cache's rules, on the object itself.


async def test_a_read_that_spans_a_change_is_not_kept() -> None:
    cache = ReplyCache(10)
    generation = cache.generation
    cache.changed(UserChange(ChangeKind.UPDATED, record(2), NOW))  # another user, even
    cache.put(record(1), generation)
    assert cache.get(1) is None
    cache.put(record(1), cache.generation)
    assert cache.get(1) is not None


async def test_no_read_of_a_user_is_kept_while_a_write_to_it_is_in_flight() -> None:
    cache = ReplyCache(10)
    cache.put(record(1), cache.generation)
    with cache.writing(1):
        assert cache.get(1) is None  # forgotten as the write starts
        cache.put(record(1), cache.generation)
        assert cache.get(1) is None
        cache.put(record(2), cache.generation)  # other users are kept
        assert cache.get(2) is not None
    assert cache.get(1) is None


async def test_a_lost_feed_empties_the_cache_and_keeps_it_off_until_back() -> None:
    cache = ReplyCache(10)
    cache.put(record(1), cache.generation)
    cache.feed_state("the change feed was lost")
    assert cache.get(1) is None
    cache.put(record(1), cache.generation)
    assert cache.get(1) is None
    generation = cache.generation
    cache.feed_state(None)
    cache.put(record(1), generation)  # a read begun before the feed came back
    assert cache.get(1) is None
    cache.put(record(1), cache.generation)
    assert cache.get(1) is not None


async def test_the_least_recently_used_reply_goes_first() -> None:
    cache = ReplyCache(2)
    for user_id in (1, 2):
        cache.put(record(user_id), cache.generation)
    assert cache.get(1) is not None
    cache.put(record(3), cache.generation)
    assert len(cache) == 2
    assert cache.get(2) is None
    assert cache.get(1) is not None
    assert cache.get(3) is not None


def test_another_connections_commit_empties_the_cache_before_the_next_read() -> None:
    version = [0]
    cache = ReplyCache(10, outside_version=lambda: version[0])
    assert cache.get(1) is None  # as GetUser does: the check, then the read
    cache.put(record(1), cache.generation)
    assert cache.get(1) is not None
    version[0] += 1
    assert cache.get(1) is None
    assert len(cache) == 0


def test_a_reply_holds_the_user_and_the_user_without_email() -> None:
    reply = reply_of(record(1))
    whole = users_pb2.User.FromString(reply.wire)
    assert (whole.id, whole.email) == (1, "ada@example.com")
    shown = users_pb2.User.FromString(reply.without_email.wire)
    assert shown.email == ""
    assert shown.username == whole.username
    assert reply_of(record(1, email="")).without_email is not None


# Through a real server on a real SQLite file.


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test servers' settings without store probes after the start: a probe writes, and any
    other connection's commit empties the cache, which would make what it holds a race here."""
    return replace(settings, store_probe_interval_seconds=3600)


def new_user(name: str, email: str = "") -> users_pb2.CreateUserRequest:
    return users_pb2.CreateUserRequest(username=name, email=email or f"{name}@example.com")


def rename(user: users_pb2.User, display_name: str) -> users_pb2.UpdateUserRequest:
    return users_pb2.UpdateUserRequest(
        user=users_pb2.User(id=user.id, display_name=display_name),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )


async def read_twice(stub: Any, user_id: int) -> users_pb2.User:
    """The user as GetUser answers it, read twice (the second from the cache) and the same."""
    first = await stub.GetUser(users_pb2.GetUserRequest(id=user_id))
    second: users_pb2.User = await stub.GetUser(users_pb2.GetUserRequest(id=user_id))
    assert second == first
    return second


async def not_found(stub: Any, user_id: int) -> bool:
    try:
        await stub.GetUser(users_pb2.GetUserRequest(id=user_id))
    except grpc.aio.AioRpcError as error:
        return bool(error.code() == grpc.StatusCode.NOT_FOUND)
    return False


async def test_reads_see_this_servers_updates_and_deletes_at_once(
    server: tuple[UsersServer, int], stub: Any, channel: Any
) -> None:
    replies = server[0].replies
    assert replies is not None
    ada = await stub.CreateUser(new_user("ada"))
    assert await read_twice(stub, ada.id) == ada
    assert len(replies) == 1
    renamed = await stub.UpdateUser(rename(ada, "Ada L."))
    assert await read_twice(stub, ada.id) == renamed
    auth = users_pb2_grpc.AuthServiceStub(channel)
    promoted = await auth.SetRole(users_pb2.SetRoleRequest(id=ada.id, role=users_pb2.ROLE_ADMIN))
    assert (await read_twice(stub, ada.id)).role == users_pb2.ROLE_ADMIN
    assert (await read_twice(stub, ada.id)).etag == promoted.etag
    await stub.DeleteUser(users_pb2.DeleteUserRequest(id=ada.id))
    assert await not_found(stub, ada.id)
    assert len(replies) == 0


async def test_members_never_see_anothers_email_from_the_cache(
    server: tuple[UsersServer, int], channel: Any, admin_token: str
) -> None:
    accounts = Accounts(channel, admin_token)
    ada, bob = await accounts.new(), await accounts.new()
    stub = users_pb2_grpc.UserServiceStub(channel)
    request = users_pb2.GetUserRequest(id=bob.id)
    # In every order: admin first, then the member, then the user itself, then all again.
    for _ in range(2):
        as_admin = await stub.GetUser(request)
        as_ada = await stub.GetUser(request, metadata=ada.metadata)
        as_bob = await stub.GetUser(request, metadata=bob.metadata)
        assert as_admin.email == as_bob.email == f"{bob.username}@example.com"
        assert as_ada.email == ""
        as_ada.email = as_admin.email
        assert as_ada == as_admin == as_bob
    assert server[0].replies is not None
    assert server[0].replies.get(bob.id) is not None  # answered from the cache


async def test_the_cache_holds_at_most_its_setting(
    start_server: ServerFactory, admin_token: str
) -> None:
    server, port = await start_server(reply_cache_entries=3)
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        users = [await stub.CreateUser(new_user(f"user{index}")) for index in range(10)]
        for user in users * 2:
            assert await stub.GetUser(users_pb2.GetUserRequest(id=user.id)) == user
    assert server.replies is not None
    assert len(server.replies) == 3


async def test_with_no_entries_there_is_no_cache(
    start_server: ServerFactory, admin_token: str
) -> None:
    server, port = await start_server(reply_cache_entries=0)
    assert server.replies is None
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        ada = await stub.CreateUser(new_user("ada"))
        assert await read_twice(stub, ada.id) == ada


# Two server processes on one SQLite file.


async def test_a_write_through_one_process_is_read_through_the_other_at_once(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path, admin_token: str
) -> None:
    db = tmp_path / "shared" / "users.db"
    one = spawn_server(db)
    other = spawn_server(db)
    async with (
        aio_channel(one.target, token=admin_token) as to_one,
        aio_channel(other.target, token=admin_token) as to_other,
    ):
        via_one = users_pb2_grpc.UserServiceStub(to_one)
        via_other = users_pb2_grpc.UserServiceStub(to_other)
        ada = await via_one.CreateUser(new_user("ada"))
        assert await read_twice(via_other, ada.id) == ada
        renamed = await via_one.UpdateUser(rename(ada, "Ada L."))
        assert await read_twice(via_other, ada.id) == renamed
        await via_one.DeleteUser(users_pb2.DeleteUserRequest(id=ada.id))
        assert await not_found(via_other, ada.id)


async def test_interleaved_writes_and_reads_through_two_processes_match_the_last_write(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path, admin_token: str
) -> None:
    """One client, one operation at a time, each through either process: every read answers
    the user as the last acknowledged write left it (deleted: NOT_FOUND)."""
    db = tmp_path / "shared" / "users.db"
    servers = (spawn_server(db), spawn_server(db))
    rng = random.Random(20)
    async with (
        aio_channel(servers[0].target, token=admin_token) as first,
        aio_channel(servers[1].target, token=admin_token) as second,
    ):
        stubs = (users_pb2_grpc.UserServiceStub(first), users_pb2_grpc.UserServiceStub(second))
        expected: dict[int, users_pb2.User | None] = {}
        for index in range(4):
            user = await stubs[index % 2].CreateUser(new_user(f"user{index}"))
            expected[user.id] = user
        for step in range(300):
            stub = rng.choice(stubs)
            user_id = rng.choice(list(expected))
            current = expected[user_id]
            action = rng.random()
            if current is not None and action < 0.2:
                expected[user_id] = await stub.UpdateUser(rename(current, f"name {step}"))
            elif current is not None and action < 0.23:
                await stub.DeleteUser(users_pb2.DeleteUserRequest(id=user_id))
                expected[user_id] = None
            elif current is None:
                assert await not_found(stub, user_id)
            else:
                assert await stub.GetUser(users_pb2.GetUserRequest(id=user_id)) == current


async def test_a_read_answered_from_the_cache_is_the_stores_answer(
    server: tuple[UsersServer, int], stub: Any
) -> None:
    """The bytes a hit sends are the message the store's record gives, field for field."""
    ada = await stub.CreateUser(new_user("ada"))
    await read_twice(stub, ada.id)
    stored = await server[0].store.get_user(ada.id)
    replies = server[0].replies
    assert replies is not None
    reply = replies.get(ada.id)
    assert reply is not None
    assert reply.wire == reply_of(stored).wire


async def test_a_commit_to_the_file_by_any_other_connection_is_read_at_once(
    server: tuple[UsersServer, int], stub: Any, tmp_path: Path
) -> None:
    """What a tool writing the file straight (an import, a repair) commits is what the next read
    answers, though the server's cache held the user."""
    ada = await stub.CreateUser(new_user("ada"))
    await read_twice(stub, ada.id)
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "users.db")) as conn, conn:
        conn.execute("UPDATE users SET display_name = 'Written aside' WHERE id = ?", (ada.id,))
    assert (await read_twice(stub, ada.id)).display_name == "Written aside"
