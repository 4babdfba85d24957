"""Benchmark the users service: unary CreateUser/GetUser throughput and latency, GetUsers rate.

Starts a real server process on a temporary database, drives it over loopback with bounded
concurrency, counts and time, prints a table, then drains the server with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from users.v1 import users_pb2, users_pb2_grpc


def start_server(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A `python -m users_service` process on an ephemeral port; returns it and the port.

    It logs at INFO, one line per RPC, into `log`, as it would in production.
    """
    env = {
        **os.environ,
        "USERS_LISTEN_ADDRESS": "127.0.0.1:0",
        "USERS_DATABASE_URL": f"sqlite:///{db}",
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "users_service"], env=env, stderr=sink)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r'"message": "listening".*"port": (\d+)', log.read_text())
        if match:
            return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the server did not start; its log:\n{log.read_text()}")


async def run_bounded(
    call: Callable[[int], Awaitable[Any]], count: int, concurrency: int, time_limit: float
) -> tuple[list[float], float]:
    """Runs call(0..count-1) with at most `concurrency` at once; latencies (s) and wall time."""
    latencies: list[float] = []
    next_index = 0
    stop_at = time.monotonic() + time_limit

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.monotonic() < stop_at:
            index, next_index = next_index, next_index + 1
            started = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def row(name: str, latencies: list[float], wall: float) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (
        f"{name:<22}{len(latencies):>9}{len(latencies) / wall:>12.0f}"
        f"{cuts[49] * 1000:>10.2f}{cuts[98] * 1000:>10.2f}"
    )


async def bench(port: int, args: argparse.Namespace) -> list[str]:
    lines = [f"{'benchmark':<22}{'calls':>9}{'per s':>12}{'p50 ms':>10}{'p99 ms':>10}"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        ids: list[int] = []

        async def create(index: int) -> None:
            user = await stub.CreateUser(
                users_pb2.CreateUserRequest(username=f"bench{index:07}", email="b@example.com"),
                timeout=10,
            )
            ids.append(user.id)

        async def get(_: int) -> None:
            user_id = random.choice(ids)  # noqa: S311 - picking ids, not secrets
            await stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=10)

        for name, call, count in (
            ("CreateUser", create, args.creates),
            ("GetUser", get, args.gets),
        ):
            latencies, wall = await run_bounded(call, count, args.concurrency, args.time_limit)
            lines.append(row(name, latencies, wall))
        lines.append(await bench_stream(stub, len(ids), args))
    return lines


async def bench_stream(stub: Any, existing: int, args: argparse.Namespace) -> str:
    async def rows() -> AsyncIterator[Any]:
        for index in range(existing, args.stream_users):
            yield users_pb2.CreateUserRequest(username=f"bulk{index:07}")

    if existing < args.stream_users:
        await stub.ImportUsers(rows(), timeout=120)
    started = time.perf_counter()
    count = 0
    async for _ in stub.GetUsers(users_pb2.GetUsersRequest(), timeout=120):
        count += 1
    wall = time.perf_counter() - started
    return f"{'GetUsers (stream all)':<22}{count:>9}{count / wall:>12.0f}{'users/s':>20}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=3000, help="CreateUser calls")
    parser.add_argument("--gets", type=int, default=6000, help="GetUser calls")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight at once")
    parser.add_argument("--stream-users", type=int, default=20000, help="users GetUsers streams")
    parser.add_argument("--time-limit", type=float, default=15, help="seconds per unary phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-users-") as tmp:
        proc, port = start_server(Path(tmp) / "users.db", Path(tmp) / "server.log")
        try:
            lines = asyncio.run(bench(port, args))
        finally:
            proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(timeout=30)
    print(f"users service on {os.cpu_count()} CPUs, SQLite WAL synchronous=FULL, loopback")
    print("\n".join(lines))
    print(f"server drained with exit code {exit_code}")


if __name__ == "__main__":
    main()
