"""Faults from outside: users stopped, SIGKILLed mid-burst, stopped mid-stream. Run last."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import Stack, tls_channel

TIMEOUT = 10
ENDED_OK = (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)


def poll_status(http: httpx.Client, path: str, wanted: int, within: float) -> float:
    """Seconds until GET path answers `wanted` (each answer must itself come fast)."""
    start = time.monotonic()
    while True:
        asked = time.monotonic()
        status = http.get(path).status_code
        assert time.monotonic() - asked < 2, f"{path} took more than 2 s to answer"
        if status == wanted:
            return time.monotonic() - start
        assert time.monotonic() - start < within, f"{path} still {status} after {within} s"
        time.sleep(0.1)


def test_users_stopped_makes_webapp_answer_503_fast_and_it_recovers(stack: Stack) -> None:
    webapp_before = stack.inspect("webapp")["State"]["StartedAt"]
    with httpx.Client(base_url=stack.http_url, timeout=5, headers=stack.admin_headers) as http:
        poll_status(http, "/readyz", 200, within=10)

        stack.compose("stop", "users")
        assert poll_status(http, "/readyz", 503, within=2) < 2
        assert poll_status(http, "/api/v1/users", 503, within=2) < 2
        assert "retry-after" in http.get("/api/v1/users").headers

        stack.compose("start", "users")
        stack.wait_health("users", "healthy")
        poll_status(http, "/readyz", 200, within=20)
        poll_status(http, "/api/v1/users", 200, within=20)
    assert stack.inspect("webapp")["State"]["StartedAt"] == webapp_before


def create_until_failure(
    stack: Stack, prefix: str, acked: list[str], stop: threading.Event
) -> None:
    """Creates users one after the other until a call fails (bounded: 2000 calls, 60 s)."""
    deadline = time.monotonic() + 60
    with tls_channel(stack.grpc_target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        for n in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            name = f"{prefix}-{n}"
            try:
                users.CreateUser(users_pb2.CreateUserRequest(username=name), timeout=5)
            except grpc.RpcError:
                return
            acked.append(name)


def test_sigkill_during_a_burst_of_creates_loses_no_acknowledged_user(
    stack: Stack, unique: str
) -> None:
    acked: list[list[str]] = [[] for _ in range(8)]
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for n, names in enumerate(acked):
            pool.submit(create_until_failure, stack, f"{unique}-{n}", names, stop)
        deadline = time.monotonic() + 30
        while sum(map(len, acked)) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        stack.run_docker("kill", "--signal", "KILL", stack.container("users"))
        stop.set()
    names = [name for names in acked for name in names]
    assert len(names) >= 400, "the burst never got going"

    stack.compose("start", "users")
    stack.wait_health("users", "healthy")
    with tls_channel(stack.grpc_target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        found = users.GetUsers(users_pb2.GetUsersRequest(usernames=names), timeout=30)
        assert sorted(user.username for user in found) == sorted(names)


def seed(users: users_pb2_grpc.UserServiceStub, prefix: str, count: int) -> None:
    rows = (users_pb2.CreateUserRequest(username=f"{prefix}-{n}") for n in range(count))
    summary = users.ImportUsers(rows, timeout=120)
    assert summary.created_count == count


def read_stream(call: grpc.Call, started: threading.Event) -> tuple[int, object]:
    """Counts a GetUsers stream's users; (count, final status code)."""
    count = 0
    try:
        for _ in call:
            count += 1
            if count == 100:
                started.set()
                time.sleep(0.5)  # the stop signal lands while the stream is open
    except grpc.RpcError as error:
        started.set()
        return count, error.code()
    started.set()
    return count, call.code()


def unary_calls(stack: Stack, done: threading.Event) -> list[tuple[grpc.StatusCode, str]]:
    """ListUsers calls in flight until one fails or the stop is done (bounded: 5000, 60 s)."""
    codes: list[tuple[grpc.StatusCode, str]] = []
    with tls_channel(stack.grpc_target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        deadline = time.monotonic() + 60
        for _ in range(5000):
            try:
                users.ListUsers(users_pb2.ListUsersRequest(page_size=50), timeout=TIMEOUT)
            except grpc.RpcError as error:
                codes.append((error.code(), error.details()))
                return codes
            codes.append((grpc.StatusCode.OK, ""))
            if done.is_set() or time.monotonic() > deadline:
                return codes
    return codes


def test_docker_stop_during_a_stream_and_calls_truncates_nothing_and_exits_0(
    stack: Stack, channel: grpc.Channel, unique: str
) -> None:
    users = users_pb2_grpc.UserServiceStub(channel)
    seed(users, unique, 20_000)
    expected = sum(1 for _ in users.GetUsers(users_pb2.GetUsersRequest(), timeout=60))
    started, done = threading.Event(), threading.Event()

    call = users.GetUsers(users_pb2.GetUsersRequest(), timeout=60)
    with ThreadPoolExecutor(max_workers=5) as pool:
        stream = pool.submit(read_stream, call, started)
        calls = [pool.submit(unary_calls, stack, done) for _ in range(4)]
        assert started.wait(timeout=30)
        stack.run_docker("stop", "--time", "30", stack.container("users"))
        done.set()
        count, code = stream.result(timeout=60)
        codes = [code for future in calls for code in future.result(timeout=60)]

    exit_code = stack.inspect("users")["State"]["ExitCode"]
    stack.compose("start", "users")
    stack.wait_health("users", "healthy")
    assert exit_code == 0
    assert code in ENDED_OK
    if code == grpc.StatusCode.OK:
        assert count == expected, f"stream ended OK after {count} of {expected} users"
    failures = [(code, details) for code, details in codes if code != grpc.StatusCode.OK]
    assert failures, "the stop ended no unary call: nothing was in flight"
    assert {code for code, _ in failures} <= set(ENDED_OK), failures
