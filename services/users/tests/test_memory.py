"""GetUsers streams 100,000 users from a real server process in bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from testkit.channels import aio_channel
from testkit.processes import memory_kb, reset_peak_rss
from users.v1 import users_pb2, users_pb2_grpc
from users_service.store import NewUser
from users_service.store.sqlite import SqliteUserStore

from .conftest import ServerProcess

pytestmark = pytest.mark.slow

USERS = 100_000
# 100,000 users as Python objects (rows, records, messages) take well over 100 MB; streaming
# them in keyset batches of 500 must stay far below that.
MAX_GROWTH_MB = 30


async def seed(db: Path) -> None:
    store = SqliteUserStore(db)
    await store.open()
    try:
        for start in range(0, USERS, 10_000):
            await store.create_users(
                [
                    NewUser(f"user{i:06}", email=f"user{i:06}@example.com", display_name="A User")
                    for i in range(start, start + 10_000)
                ]
            )
    finally:
        await store.close()


async def test_get_users_streams_100k_users_in_bounded_memory(
    spawn_server: Callable[..., ServerProcess],
    tmp_path: Path,
    admin_token: str,
) -> None:
    db = tmp_path / "big" / "users.db"
    await seed(db)
    proc = spawn_server(db)
    pid = proc.process.pid
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        warm = [user async for user in stub.GetUsers(users_pb2.GetUsersRequest(ids=[1, 2]))]
        assert len(warm) == 2
        baseline_kb = memory_kb(pid, "VmRSS")
        reset_peak_rss(pid)
        count, last_id = 0, 0
        async for user in stub.GetUsers(users_pb2.GetUsersRequest()):
            assert user.id > last_id
            count, last_id = count + 1, user.id
        peak_kb = memory_kb(pid, "VmHWM")
    assert count == USERS
    growth_mb = (peak_kb - baseline_kb) / 1024
    assert growth_mb < MAX_GROWTH_MB, f"peak RSS grew {growth_mb:.1f} MB while streaming"


# Requests far over the caps: 3,000,000 ids (a 3 MB message) and 300,000 usernames.
HUGE_REQUESTS = {
    "3,000,000 ids": users_pb2.GetUsersRequest(ids=[0] * 3_000_000),
    "300,000 usernames": users_pb2.GetUsersRequest(
        usernames=[f"user{i:06}" for i in range(300_000)]
    ),
}
MAX_REFUSAL_GROWTH_MB = 20


@pytest.mark.parametrize("kind", HUGE_REQUESTS)
async def test_a_huge_get_users_is_refused_at_once_in_flat_memory(
    spawn_server: Callable[..., ServerProcess], kind: str, admin_token: str
) -> None:
    proc = spawn_server()
    pid = proc.process.pid
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        created = await stub.CreateUser(users_pb2.CreateUserRequest(username="still-here"))
        baseline_kb = memory_kb(pid, "VmRSS")
        reset_peak_rss(pid)
        started = time.perf_counter()
        huge = stub.GetUsers(HUGE_REQUESTS[kind])
        beside = stub.GetUser(users_pb2.GetUserRequest(id=created.id))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in huge:
                pass
        refused_after = time.perf_counter() - started
        assert (await beside).username == "still-here"  # a concurrent call is served
        peak_kb = memory_kb(pid, "VmHWM")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65536" in (caught.value.details() or "")  # the cap, named
    assert refused_after < 1.0
    growth_mb = (peak_kb - baseline_kb) / 1024
    print(f"{kind}: refused in {refused_after * 1000:.0f} ms, peak RSS +{growth_mb:.1f} MiB")
    assert growth_mb < MAX_REFUSAL_GROWTH_MB
