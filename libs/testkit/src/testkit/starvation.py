"""The starvation drill (issue 16): one client loops the worst cheap requests against a users
service holding many users while another times GetUser. test_starvation.py asserts a ceiling;
`make bench`'s starvation row reports the p99 against its target (docs/limits.md).

`python -m testkit.starvation hammer TARGET [TOKEN]` loops the requests until SIGTERM, then prints
how many it made; `python -m testkit.starvation probe TARGET USERS SECONDS [TOKEN]` prints the
GetUser latencies (JSON).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.message import Message
from users.v1 import users_pb2, users_pb2_grpc

from testkit.channels import aio_channel

# GetUser is asked this often (each call on its own, whether the last has answered or not: a
# stall shows in every call it delays, not in one).
PROBE_CALLS_PER_SECOND = 200


def worst_cheap_requests() -> list[tuple[str, Message]]:
    """The requests that cost the server most while each stays within its caps: prefixes that
    match nothing or only the table's end, pages of the maximum size, batches of 1,000 misses
    and of 1,000 hits, 1,000 usernames that miss."""
    return [
        ("ListUsers", users_pb2.ListUsersRequest(page_size=1000, username_prefix="zzz")),
        ("ListUsers", users_pb2.ListUsersRequest(page_size=1000, username_prefix="user099")),
        ("ListUsers", users_pb2.ListUsersRequest(page_size=1000)),
        ("BatchGetUsers", users_pb2.BatchGetUsersRequest(ids=range(2_000_000, 2_001_000))),
        ("BatchGetUsers", users_pb2.BatchGetUsersRequest(ids=range(1, 1001))),
        ("GetUsers", users_pb2.GetUsersRequest(usernames=[f"nobody{i}" for i in range(1000)])),
    ]


async def hammer(target: str, token: str | None = None) -> int:
    """Loops worst_cheap_requests() one after another until SIGTERM (the call in flight ends
    first); prints "hammering" once connected. Returns the calls made."""
    requests = worst_cheap_requests()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with aio_channel(target, token=token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        await channel.channel_ready()
        print("hammering", flush=True)
        made = 0
        while not stop.is_set():
            method, request = requests[made % len(requests)]
            call: Any = getattr(stub, method)(request)
            if method == "GetUsers":
                async for _ in call:
                    pass
            else:
                await call
            made += 1
    return made


def _probe_ids(users: int) -> Iterator[int]:
    n = 0
    while True:
        yield 1 + n * 997 % users
        n += 1


async def get_user_times(
    target: str, users: int, seconds: float, token: str | None = None
) -> tuple[list[float], int]:
    """GetUser latencies in ms over `seconds` (PROBE_CALLS_PER_SECOND, ids spread over
    1..users), and the number of calls that failed. A call still unanswered when the time is
    up counts as taking until then."""
    async with aio_channel(target, token=token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        await stub.GetUser(users_pb2.GetUserRequest(id=1))  # connected, warm
        ids = _probe_ids(users)
        started = time.perf_counter()
        interval = 1 / PROBE_CALLS_PER_SECOND
        calls = [
            asyncio.create_task(_timed(stub, next(ids), started + n * interval))
            for n in range(int(seconds * PROBE_CALLS_PER_SECOND))
        ]
        done, pending = await asyncio.wait(calls, timeout=seconds + 30)
        for call in pending:
            call.cancel()
    times = [call.result() for call in done if call.result() >= 0]
    failed = sum(1 for call in done if call.result() < 0)
    return times + [(seconds + 30) * 1000] * len(pending), failed


async def _timed(stub: Any, user_id: int, at: float) -> float:
    """The call's latency in ms, sent at `at`; -1 for a failed call."""
    await asyncio.sleep(at - time.perf_counter())
    begun = time.perf_counter()
    try:
        await stub.GetUser(users_pb2.GetUserRequest(id=user_id))
    except grpc.aio.AioRpcError:
        return -1.0
    return (time.perf_counter() - begun) * 1000


def main(argv: list[str]) -> None:
    """The command line (module docstring)."""
    if argv[0] == "hammer":
        print(asyncio.run(hammer(argv[1], argv[2] if len(argv) > 2 else None)), flush=True)
    elif argv[0] == "probe":
        target, users, seconds = argv[1], int(argv[2]), float(argv[3])
        token = argv[4] if len(argv) > 4 else None
        times, failed = asyncio.run(get_user_times(target, users, seconds, token))
        print(json.dumps({"times_ms": times, "failed": failed}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
