"""`docker stop` in the middle of a burst: every call ends OK or UNAVAILABLE (users), every
request completes or is refused before it was read (webapp), and nothing is lost."""

from __future__ import annotations

import asyncio
import subprocess

import grpc
import httpx
from testkit.bursts import run_burst
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import Stack, client_credentials, drain_began, wall_time

TOTAL = 10_000
CONCURRENCY = 256
HTTP_TOTAL, HTTP_CONCURRENCY = 1_200, 64


class Creates:
    """`await creates(i)`: the i-th CreateUser with its own request id; the status code's name."""

    def __init__(self, channel: grpc.aio.Channel, prefix: str) -> None:
        self._stub = users_pb2_grpc.UserServiceStub(channel)
        self.prefix = prefix
        self.created: dict[int, int] = {}

    def request(self, index: int) -> users_pb2.CreateUserRequest:
        return users_pb2.CreateUserRequest(
            username=f"{self.prefix}{index:05}", request_id=f"{self.prefix}-{index}"
        )

    async def __call__(self, index: int) -> str:
        try:
            user = await self._stub.CreateUser(self.request(index), timeout=30)
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)
        self.created[index] = user.id
        return "OK"


def docker_stop(stack: Stack, service: str) -> subprocess.Popen[bytes]:
    """`docker stop` of the service's container, in the background (the burst goes on)."""
    command = ["docker", "stop", "--time", "30", stack.container(service)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


async def stored(stack: Stack, usernames: list[str]) -> dict[str, int]:
    """The users among `usernames` that exist, with their ids."""
    async with grpc.aio.secure_channel(
        stack.grpc_target, client_credentials(admin_at=stack.grpc_target)
    ) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        found: dict[str, int] = {}
        for start in range(0, len(usernames), 1000):
            request = users_pb2.GetUsersRequest(usernames=usernames[start : start + 1000])
            async for user in stub.GetUsers(request, timeout=60):
                found[user.username] = user.id
        return found


async def test_docker_stop_of_users_mid_burst_ends_every_call_ok_or_unavailable(
    stack: Stack, unique: str
) -> None:
    stopping: list[subprocess.Popen[bytes]] = []
    async with grpc.aio.secure_channel(
        stack.grpc_target, client_credentials(admin_at=stack.grpc_target)
    ) as channel:
        creates = Creates(channel, f"d{unique[:8]}")
        burst = await run_burst(
            TOTAL,
            CONCURRENCY,
            creates,
            hook_after=TOTAL * 3 // 10,
            hook=lambda: stopping.append(docker_stop(stack, "users")),
        )
    assert await asyncio.to_thread(stopping[0].wait, 60) == 0
    exit_code = stack.inspect("users")["State"]["ExitCode"]
    logs = stack.run_docker("logs", stack.container("users"))
    drain_lines = [
        line
        for line in (logs.stdout + logs.stderr).splitlines()
        if any(f'"message": "{m}"' in line for m in ("draining", "stopping", "stopped"))
    ]
    began = drain_began(logs.stdout + logs.stderr)
    stack.compose("start", "users")
    stack.wait_health("users", "healthy")
    counts = burst.counts()
    print(f"\ndocker stop users mid-burst: {dict(counts)}, in flight {burst.in_flight_at_hook}")
    print("\n".join(drain_lines[-3:]))
    assert exit_code == 0
    # The stop overlapped the burst: the drain began before its last call ended.
    assert began < wall_time(burst.ended_at), (began, wall_time(burst.ended_at))
    assert set(counts) <= {"OK", "UNAVAILABLE"}, counts
    assert counts["OK"] >= TOTAL * 3 // 10
    assert counts["UNAVAILABLE"] > 0

    # After the restart: every acknowledged user is there with its id, no refused one is, and
    # retrying every refused call with its request id creates it once.
    names = [creates.request(i).username for i in range(TOTAL)]
    found = await stored(stack, names)
    assert {names[i]: creates.created[i] for i in burst.indices("OK")} == found
    async with grpc.aio.secure_channel(
        stack.grpc_target, client_credentials(admin_at=stack.grpc_target)
    ) as channel:
        retries = Creates(channel, creates.prefix)
        refused = burst.indices("UNAVAILABLE")
        retried = await run_burst(len(refused), CONCURRENCY, lambda n: retries(refused[n]))
    assert retried.counts() == {"OK": len(refused)}
    assert len(await stored(stack, names)) == TOTAL


async def test_docker_stop_of_the_webapp_mid_burst_fails_no_request_after_it_started(
    stack: Stack, unique: str
) -> None:
    prefix = f"w{unique[:8]}"
    statuses: dict[int, int] = {}
    stopping: list[subprocess.Popen[bytes]] = []
    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=stack.http_url, timeout=30, limits=limits, headers=stack.admin_headers
    ) as http:

        async def create(index: int) -> str:
            try:
                response = await http.post(
                    "/api/v1/users",
                    json={"username": f"{prefix}{index:05}"},
                    headers={"Idempotency-Key": f"{prefix}-{index}"},
                )
            except httpx.ConnectError:
                return "refused"
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                return "dropped"  # sent, no answer: read or not, stored or not (below)
            statuses[index] = response.status_code
            return "completed"

        burst = await run_burst(
            HTTP_TOTAL,
            HTTP_CONCURRENCY,
            create,
            hook_after=HTTP_TOTAL * 3 // 10,
            hook=lambda: stopping.append(docker_stop(stack, "webapp")),
        )
    assert await asyncio.to_thread(stopping[0].wait, 60) == 0
    exit_code = stack.inspect("webapp")["State"]["ExitCode"]
    logs = stack.run_docker("logs", stack.container("webapp"))
    began = drain_began(logs.stdout + logs.stderr)
    stack.compose("start", "webapp")
    stack.wait_health("webapp", "healthy")
    names = [f"{prefix}{i:05}" for i in range(HTTP_TOTAL)]
    found = await stored(stack, names)
    unanswered = burst.indices("refused") + burst.indices("dropped")
    counts = {
        "completed": len(burst.indices("completed")),
        "refused_before_read": sum(names[i] not in found for i in unanswered),
        "failed_after_start": sum(names[i] in found for i in unanswered)
        + sum(status != 201 for status in statuses.values()),
    }
    print(f"\ndocker stop webapp mid-burst: {counts}, raw {dict(burst.counts())}")
    assert exit_code == 0
    # The stop overlapped the burst: the drain began before its last request ended.
    assert began < wall_time(burst.ended_at), (began, wall_time(burst.ended_at))
    assert counts["failed_after_start"] == 0, (counts, burst.counts())
    assert counts["completed"] >= HTTP_TOTAL * 3 // 10
    assert {names[i] for i in burst.indices("completed")} <= found.keys()
