"""A million users in SQLite: one client loops the worst cheap requests while another's GetUser
stays fast: no request holds the event loop for long (docs/limits.md, the event loop)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc

from .conftest import ServerProcess
from .million import USERS, seed_million

pytestmark = pytest.mark.slow

# The budget is 50 ms; the shared CI machine's own load adds more than that to calls
# (p99 81-195 ms measured there with load averages of 10-24), so the test asserts a looser
# ceiling and prints the figure (docs/limits.md). Before the prefix scans moved off the loop
# each held it ~220 ms, and 1,000 GetUsers beside them did not finish in 300 s.
P99_CEILING_MS = 250
MAX_SECONDS = 60.0

# The worst cheap requests, looped one after another from another process: prefixes that match
# nothing or only the table's end, a batch of misses, pages of the maximum size, username misses.
HAMMER = textwrap.dedent(
    """
    import asyncio, sys, grpc
    from testkit.channels import aio_channel
    from users.v1 import users_pb2 as pb, users_pb2_grpc
    REQUESTS = [
        ("ListUsers", pb.ListUsersRequest(page_size=1000, username_prefix="zzz")),
        ("ListUsers", pb.ListUsersRequest(page_size=1000, username_prefix="user099")),
        ("ListUsers", pb.ListUsersRequest(page_size=1000)),
        ("BatchGetUsers", pb.BatchGetUsersRequest(ids=range(2_000_000, 2_001_000))),
        ("GetUsers", pb.GetUsersRequest(usernames=[f"nobody{i}" for i in range(1000)])),
    ]
    async def loop(stub, n):
        while True:
            method, request = REQUESTS[n % len(REQUESTS)]
            n += 1
            call = getattr(stub, method)(request)
            if method == "GetUsers":
                async for _ in call:
                    pass
            else:
                await call
    async def main():
        async with aio_channel(sys.argv[1], token=sys.argv[2]) as channel:
            stub = users_pb2_grpc.UserServiceStub(channel)
            print("hammering", flush=True)
            await loop(stub, 0)
    asyncio.run(main())
    """
)


async def get_user_times(target: str, token: str, calls: int) -> list[float]:
    times = []
    async with aio_channel(target, token=token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        await stub.GetUser(users_pb2.GetUserRequest(id=1))
        deadline = time.perf_counter() + MAX_SECONDS
        for n in range(calls):
            if time.perf_counter() > deadline:
                times.append(MAX_SECONDS * 1000)  # starved: counts as one very slow call
                break
            started = time.perf_counter()
            await stub.GetUser(users_pb2.GetUserRequest(id=1 + n * 997 % USERS))
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    return times


async def test_get_user_stays_fast_while_another_client_loops_the_worst_cheap_requests(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path, admin_token: str
) -> None:
    db = tmp_path / "million" / "users.db"
    db.parent.mkdir()
    await asyncio.to_thread(seed_million, db)
    proc = spawn_server(db)
    quiet = sorted(await get_user_times(proc.target, admin_token, 200))
    command = [sys.executable, "-c", HAMMER, proc.target, admin_token]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as hammer:  # noqa: ASYNC220
        try:
            assert hammer.stdout is not None
            assert await asyncio.to_thread(hammer.stdout.readline) == "hammering\n"
            await asyncio.sleep(1)  # the loops under way
            loaded = sorted(await get_user_times(proc.target, admin_token, 1000))
        finally:
            hammer.kill()
    p99 = loaded[int(len(loaded) * 0.99)]
    print(
        f"GetUser p50/p99 alone {quiet[len(quiet) // 2]:.1f}/{quiet[int(len(quiet) * 0.99)]:.1f}"
        f" ms; beside the worst cheap requests {loaded[len(loaded) // 2]:.1f}/{p99:.1f} ms"
        f" (max {loaded[-1]:.1f} ms)"
    )
    assert p99 < P99_CEILING_MS
