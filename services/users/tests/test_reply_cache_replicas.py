"""GetUser's reply cache on two replicas of one PostgreSQL database: each replica's own writes
are read back at once, the other's once the change feed brings them, and a lost feed empties
the cache and keeps it off until the feed is back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from users.v1 import users_pb2

from .conftest import Replica
from .pg_server import PostgresServer
from .test_reply_cache import not_found, read_twice, rename

pytestmark = pytest.mark.slow  # on PostgreSQL

FEED_DELAY_SECONDS = 5.0  # at most; the feed usually takes milliseconds


async def eventually(replica: Replica, user_id: int, expected: users_pb2.User | None) -> None:
    """The replica answers `expected` (None: NOT_FOUND) within the feed's delay, and from then
    on, the cache included."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FEED_DELAY_SECONDS
    while loop.time() < deadline:
        if expected is None and await not_found(replica.stub, user_id):
            return
        if expected is not None and await read_twice(replica.stub, user_id) == expected:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"replica still answers the old user {user_id} after {FEED_DELAY_SECONDS} s")


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(FEED_DELAY_SECONDS / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    pytest.fail(f"waited {FEED_DELAY_SECONDS} s for {what}")


async def test_each_replica_reads_its_own_writes_at_once_and_the_others_by_the_feed(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    ada = await a.stub.CreateUser(users_pb2.CreateUserRequest(username="ada"))
    assert await read_twice(a.stub, ada.id) == ada
    assert await read_twice(b.stub, ada.id) == ada
    renamed = await a.stub.UpdateUser(rename(ada, "Ada L."))
    assert await read_twice(a.stub, ada.id) == renamed  # its own write: at once
    await eventually(b, ada.id, renamed)
    again = await b.stub.UpdateUser(rename(renamed, "Ada Lovelace"))
    assert await read_twice(b.stub, ada.id) == again
    await eventually(a, ada.id, again)
    await b.stub.DeleteUser(users_pb2.DeleteUserRequest(id=ada.id))
    assert await not_found(b.stub, ada.id)
    await eventually(a, ada.id, None)


async def test_a_lost_feed_empties_the_cache_and_turns_it_off_until_it_is_back(
    replicas: tuple[Replica, Replica], postgres_server: PostgresServer, postgres_url: str
) -> None:
    """While the feed is down, the other replica's changes are never heard: nothing cached
    before may answer after."""
    a, b = replicas
    ada = await a.stub.CreateUser(users_pb2.CreateUserRequest(username="ada"))
    assert await read_twice(b.stub, ada.id) == ada
    cache = b.server.replies
    assert cache is not None
    assert len(cache) == 1
    with postgres_server.admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (postgres_url.rsplit("/", 1)[1],),
        )
    await until(lambda: not cache.enabled, "the lost feed to turn the cache off")
    assert len(cache) == 0
    # Committed while b may not be listening: b must not answer the old user from its cache.
    renamed = await a.stub.UpdateUser(rename(ada, "Ada L."))
    assert await b.stub.GetUser(users_pb2.GetUserRequest(id=ada.id)) == renamed
    await until(lambda: cache.enabled, "the feed to come back")
    assert await read_twice(b.stub, ada.id) == renamed
    assert len(cache) == 1
