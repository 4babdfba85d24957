"""The scaled variant (compose.scale.yaml): users replicas on one PostgreSQL behind one webapp.

Which replica served a call is read from the replicas' own logs: every RPC's log line carries the
request id the webapp forwarded (X-Request-ID in, x-request-id to gRPC). The tests that stop or add
replicas run last.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.bursts import run_burst
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import Stack, docker_time, drain_began, run, tls_channel, wall_time

REPLICAS = 3
USERS_SERVICE = "users.v1.UserService"
TIMEOUT = 10
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def http(scaled_stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client for the scaled stack's webapp."""
    headers = scaled_stack.admin_headers
    with httpx.Client(base_url=scaled_stack.http_url, timeout=TIMEOUT, headers=headers) as client:
        yield client


def inspect(container_id: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(run(["docker", "inspect", container_id]).stdout)[0]
    return info


def log_entries(container_id: str) -> list[dict[str, Any]]:
    """A container's JSON log lines (the service logs to stderr; docker keeps both streams)."""
    result = run(["docker", "logs", container_id])
    lines = (result.stdout + result.stderr).splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def replica_target(container_id: str) -> str:
    """host:port of one replica's published gRPC port (each replica has an ephemeral one)."""
    [binding] = inspect(container_id)["NetworkSettings"]["Ports"]["50051/tcp"]
    return f"127.0.0.1:{binding['HostPort']}"


def served_by(stack: Stack, request_ids: set[str]) -> Counter[str]:
    """How many RPCs carrying these request ids each users replica logged."""
    counts: Counter[str] = Counter()
    for container_id in stack.containers("users"):
        for entry in log_entries(container_id):
            if entry.get("request_id") in request_ids and "method" in entry:
                counts[container_id] += 1
    return counts


def trace(stack: Stack, request_ids: set[str]) -> str:
    """Every log line of the stack's containers that carries one of these request ids."""
    lines = [
        f"{container_id[:12]} {entry}"
        for container_id in stack.containers("users") + stack.containers("webapp")
        for entry in log_entries(container_id)
        if entry.get("request_id") in request_ids
    ]
    return "\n".join(lines)


def get_many(http: httpx.Client, path: str, count: int) -> set[str]:
    """GETs `path` `count` times, each with its own X-Request-ID; every answer must be 200."""
    ids = {f"scaled-{uuid.uuid4().hex}" for _ in range(count)}
    for request_id in ids:
        response = http.get(path, headers={"X-Request-ID": request_id})
        assert response.status_code == 200, response.text
    return ids


def create(http: httpx.Client, username: str) -> dict[str, object]:
    response = http.post("/api/v1/users", json={"username": username})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def stubs(stack: Stack) -> Iterator[tuple[grpc.Channel, users_pb2_grpc.UserServiceStub]]:
    for container_id in stack.containers("users"):
        channel = tls_channel(replica_target(container_id))
        yield channel, users_pb2_grpc.UserServiceStub(channel)


def test_every_replica_serves_from_postgres(scaled_stack: Stack) -> None:
    containers = scaled_stack.containers("users")
    assert len(containers) == REPLICAS
    for container_id in containers:
        env = inspect(container_id)["Config"]["Env"]
        assert any(str(var).startswith("USERS_DATABASE_URL=postgresql://") for var in env)
        with tls_channel(replica_target(container_id)) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(service=USERS_SERVICE), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


# Run inside a users replica: its own store settings (USERS_DATABASE_URL, the service's connection
# defaults), one connection as the service makes them.
OWN_CONNECTION = """
import asyncio, json, os, psycopg
from users_service.store.postgres import conninfo
QUERIES = {
    "ssl": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    "rolsuper": "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
    "user": "SELECT current_user",
    "statement_timeout": "SHOW statement_timeout",
    "lock_timeout": "SHOW lock_timeout",
    "idle_in_transaction_session_timeout": "SHOW idle_in_transaction_session_timeout",
}
async def main():
    url = conninfo(os.environ["USERS_DATABASE_URL"])
    async with await psycopg.AsyncConnection.connect(url) as conn:
        found = {}
        for name, query in QUERIES.items():
            found[name] = (await (await conn.execute(query)).fetchone())[0]
    print(json.dumps(found))
asyncio.run(main())
"""
USERS_CONNECTIONS = (
    "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
    " WHERE a.usename = 'users'"
)


def test_every_replica_talks_to_postgres_over_tls_as_a_role_that_is_no_superuser(
    scaled_stack: Stack,
) -> None:
    for container_id in scaled_stack.containers("users"):
        result = run(["docker", "exec", container_id, "python", "-c", OWN_CONNECTION])
        assert json.loads(result.stdout) == {
            "ssl": True,
            "rolsuper": False,
            "user": "users",
            "statement_timeout": "10s",
            "lock_timeout": "5s",
            "idle_in_transaction_session_timeout": "2s",
        }
    # And the server's view: every connection of the service's role (pools, probes, feeds) is TLS.
    postgres = scaled_stack.container("postgres")
    command = ["psql", "--username=postgres", "--dbname=users", "-At", "-c", USERS_CONNECTIONS]
    count, all_tls = run(["docker", "exec", postgres, *command]).stdout.strip().split("|")
    assert int(count) >= REPLICAS
    assert all_tls == "t"
    # And plaintext over TCP is refused before any password is asked for (pg_hba.conf).
    plaintext = "host=127.0.0.1 sslmode=disable user=users dbname=users"
    refused = run(["docker", "exec", postgres, "psql", plaintext, "-c", "SELECT 1"], check=False)
    assert refused.returncode != 0
    assert "no encryption" in refused.stderr


def test_the_webapp_spreads_calls_over_every_replica(
    scaled_stack: Stack, http: httpx.Client, unique: str
) -> None:
    user = create(http, f"{unique}-rr")
    ids = get_many(http, f"/api/v1/users/{user['id']}", 30)
    counts = served_by(scaled_stack, ids)
    assert sum(counts.values()) == 30
    assert len(counts) == REPLICAS, f"calls landed on {len(counts)} replicas: {counts}"
    assert min(counts.values()) >= 5, counts  # round robin: about 10 each


def test_a_username_is_taken_once_across_replicas(scaled_stack: Stack, unique: str) -> None:
    replicas = list(stubs(scaled_stack))
    request = users_pb2.CreateUserRequest(username=f"{unique}-race")

    def attempt(n: int) -> grpc.StatusCode:
        _, users = replicas[n % len(replicas)]
        try:
            users.CreateUser(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = Counter(pool.map(attempt, range(12)))
    finally:
        for channel, _ in replicas:
            channel.close()
    assert codes == {grpc.StatusCode.OK: 1, grpc.StatusCode.ALREADY_EXISTS: 11}


def test_one_request_id_through_two_replicas_creates_one_user(
    scaled_stack: Stack, unique: str
) -> None:
    (first, a), (second, b), *rest = stubs(scaled_stack)
    request = users_pb2.CreateUserRequest(username=f"{unique}-idem", request_id=uuid.uuid4().hex)
    try:
        created = a.CreateUser(request, timeout=TIMEOUT)
        replayed = b.CreateUser(request, timeout=TIMEOUT)
    finally:
        for channel in (first, second, *(channel for channel, _ in rest)):
            channel.close()
    assert replayed == created


def test_a_watcher_on_one_replica_sees_a_create_through_another(
    scaled_stack: Stack, unique: str
) -> None:
    (first, a), (second, b), *rest = stubs(scaled_stack)
    try:
        watch = a.WatchUsers(users_pb2.WatchUsersRequest(), timeout=30)
        watch.initial_metadata()  # the subscription exists once the headers are back
        created = b.CreateUser(users_pb2.CreateUserRequest(username=f"{unique}-w"), timeout=5)
        event = next(
            event for event in watch if event.user.id == created.id
        )  # bounded by the call's 30 s deadline
        watch.cancel()
    finally:
        for channel in (first, second, *(channel for channel, _ in rest)):
            channel.close()
    assert event.type == users_pb2.USER_EVENT_TYPE_CREATED
    assert event.user.username == f"{unique}-w"


def test_a_sign_out_on_one_replica_revokes_the_token_on_another(
    scaled_stack: Stack, unique: str
) -> None:
    first, second = (replica_target(c) for c in scaled_stack.containers("users")[:2])
    with tls_channel(first) as admin:
        made = users_pb2_grpc.UserServiceStub(admin).CreateUser(
            users_pb2.CreateUserRequest(username=f"{unique}-r"), timeout=TIMEOUT
        )
        users_pb2_grpc.AuthServiceStub(admin).ResetPassword(
            users_pb2.ResetPasswordRequest(id=made.id, new_password="revoke me everywhere"),
            timeout=30,
        )
    with tls_channel(first, anonymous=True) as one, tls_channel(second, anonymous=True) as two:
        on_first, on_second = (
            users_pb2_grpc.AuthServiceStub(one),
            users_pb2_grpc.AuthServiceStub(two),
        )
        signed = on_first.SignIn(
            users_pb2.SignInRequest(username=made.username, password="revoke me everywhere"),
            timeout=30,
        )
        member = (("authorization", f"Bearer {signed.access_token}"),)
        # The second replica verifies (and caches) the first's token: the keys are shared.
        on_second.WhoAmI(users_pb2.WhoAmIRequest(), metadata=member, timeout=TIMEOUT)
        on_first.SignOutEverywhere(
            users_pb2.SignOutEverywhereRequest(), metadata=member, timeout=TIMEOUT
        )
        started = time.monotonic()
        code = None
        while code is None:
            try:
                on_second.WhoAmI(users_pb2.WhoAmIRequest(), metadata=member, timeout=TIMEOUT)
            except grpc.RpcError as error:
                code = error.code()
            assert time.monotonic() - started < 3.0, "the other replica still takes the token"
            time.sleep(0.01)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    print(f"revoked on the other replica after {(time.monotonic() - started) * 1000:.0f} ms")


def test_a_new_replica_gets_traffic_without_restarting_the_webapp(
    scaled_stack: Stack, http: httpx.Client, unique: str
) -> None:
    before = set(scaled_stack.containers("users"))
    scale(scaled_stack, REPLICAS + 1)
    try:
        [added] = set(scaled_stack.containers("users")) - before
        user = create(http, f"{unique}-new")
        # The webapp learns of it when a connection reaches its max age (30 s) and the name is
        # resolved again; poll for that, bounded.
        deadline = time.monotonic() + 90
        while True:
            ids = get_many(http, f"/api/v1/users/{user['id']}", 8)
            if served_by(scaled_stack, ids)[added]:
                break
            assert time.monotonic() < deadline, "the new replica got no traffic within 90 s"
            time.sleep(2)
    finally:
        scale(scaled_stack, REPLICAS)


def scale(stack: Stack, replicas: int) -> None:
    """`compose up --scale users=N`, leaving the running containers as they are."""
    stack.compose(
        "up", "--detach", "--wait", "--no-build", "--no-recreate", "--scale", f"users={replicas}"
    )


def steady_load(
    stack: Stack, prefix: str, stop: threading.Event, acked: list[int], failures: list[str]
) -> None:
    """Create-then-read pairs until `stop` (bounded: 2000 pairs, 90 s): acked ids, and the
    request ids of the calls that failed."""
    deadline = time.monotonic() + 90
    admin = stack.admin_headers
    with httpx.Client(base_url=stack.http_url, timeout=TIMEOUT, headers=admin) as http:
        for n in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            request_id = f"load-{prefix}-{n}"
            headers = {"X-Request-ID": request_id}
            try:
                created = http.post(
                    "/api/v1/users", json={"username": f"{prefix}-{n}"}, headers=headers
                )
                if created.status_code != 201:
                    failures.append(request_id)
                    continue
                acked.append(created.json()["id"])
                read = http.get(f"/api/v1/users/{acked[-1]}", headers=headers)
                if read.status_code != 200:
                    failures.append(request_id)
            except httpx.HTTPError:  # a timeout or a dropped connection fails the call too
                failures.append(request_id)


def watch_health(target: str, seen: list[tuple[int, datetime]]) -> None:
    """Records each status the replica's health Watch reports until the stream ends."""
    with tls_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=USERS_SERVICE)
        try:
            for reply in health.Watch(request, timeout=60):
                seen.append((reply.status, datetime.now(UTC)))
        except grpc.RpcError:
            return  # ended by the drain, or the process exited


def test_stopping_a_replica_under_load_fails_no_call_and_loses_no_write(
    scaled_stack: Stack, unique: str
) -> None:
    victim = scaled_stack.containers("users")[1]
    seen: list[tuple[int, datetime]] = []
    watcher = threading.Thread(target=watch_health, args=(replica_target(victim), seen))
    watcher.start()
    acked: list[list[int]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=4) as pool:
        loads = [
            pool.submit(steady_load, scaled_stack, f"{unique}-{n}", stop, ids, failures)
            for n, ids in enumerate(acked)
        ]
        time.sleep(2)
        stopped_at = datetime.now(UTC)
        scaled_stack.run_docker("stop", victim)
        time.sleep(2)  # load goes on against the survivors
        stop.set()
        for load in loads:
            load.result()  # a load loop that died would otherwise hide its failures
    watcher.join(timeout=30)

    assert failures == [], trace(scaled_stack, set(failures))
    ids = [user_id for part in acked for user_id in part]
    assert len(ids) >= 50, "the load never got going"
    admin = scaled_stack.admin_headers
    with httpx.Client(base_url=scaled_stack.http_url, timeout=TIMEOUT, headers=admin) as http:
        missing = [i for i in ids if http.get(f"/api/v1/users/{i}").status_code != 200]
    assert missing == []

    state = inspect(victim)["State"]
    assert state["ExitCode"] == 0
    finished = docker_time(state["FinishedAt"])
    not_serving = [at for status, at in seen if status == NOT_SERVING]
    assert not_serving, f"the replica never reported NOT_SERVING: {seen}"
    assert stopped_at <= not_serving[0] < finished


async def test_stopping_a_replica_mid_burst_through_the_webapp_fails_no_request(
    scaled_stack: Stack, unique: str
) -> None:
    running = [c for c in scaled_stack.containers("users") if inspect(c)["State"]["Running"]]
    assert len(running) >= 2, "no replica would survive the stop"
    prefix = f"b{unique[:8]}"
    statuses: Counter[int | str] = Counter()
    total, concurrency = 1_200, 64
    stopping: list[subprocess.Popen[bytes]] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=scaled_stack.http_url,
        timeout=30,
        limits=limits,
        headers=scaled_stack.admin_headers,
    ) as client:

        async def create_one(index: int) -> str:
            try:
                response = await client.post(
                    "/api/v1/users",
                    json={"username": f"{prefix}{index:05}"},
                    headers={"Idempotency-Key": f"{prefix}-{index}"},
                )
            except httpx.HTTPError as error:
                statuses[type(error).__name__] += 1
                return "failed"
            statuses[response.status_code] += 1
            return "created" if response.status_code == 201 else "failed"

        def stop_replica() -> None:
            command = ["docker", "stop", "--time", "30", running[0]]
            stopping.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

        burst = await run_burst(
            total, concurrency, create_one, hook_after=total * 3 // 10, hook=stop_replica
        )
    assert await asyncio.to_thread(stopping[0].wait, 60) == 0
    print(f"\nreplica stopped mid-burst through the webapp: {dict(statuses)}")
    assert burst.counts() == {"created": total}, statuses
    assert inspect(running[0])["State"]["ExitCode"] == 0
    # The stop overlapped the burst: the replica began draining before the last request ended.
    victim_log = run(["docker", "logs", running[0]])
    began = drain_began(victim_log.stdout + victim_log.stderr)
    assert began < wall_time(burst.ended_at), (began, wall_time(burst.ended_at))
    names = [f"{prefix}{i:05}" for i in range(total)]
    with tls_channel(replica_target(running[1])) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        found = [
            user
            for start in range(0, total, 1000)  # GetUsers names at most 1,000 (docs/limits.md)
            for user in users.GetUsers(
                users_pb2.GetUsersRequest(usernames=names[start : start + 1000]), timeout=60
            )
        ]
    assert sorted(user.username for user in found) == names
