"""Benchmarks the webapp against a real users service (both as subprocesses on loopback).

Prints one JSON object: API latency under concurrency, NDJSON import and stream of --users users
with the webapp's peak memory growth, and how fast every call fails while the users service is down.
Usage: python scripts/bench_webapp.py [--users 100000] [--seconds 10] [--concurrency 32]
(GET load uses wrk when installed: `apt-get install wrk`; httpx otherwise, which is client-bound.)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env)


def start_users(directory: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "USERS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "USERS_DATABASE_URL": f"sqlite:///{directory / 'users.db'}",
        "USERS_LOG_LEVEL": "WARNING",
        "USERS_GRACE_PERIOD_SECONDS": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "users_service"], env=env)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service="users.v1.UserService")
        stub = health_pb2_grpc.HealthStub(channel)
        for reply in stub.Watch(request, timeout=STARTUP_SECONDS, wait_for_ready=True):
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
    return proc


async def start_webapp(users_port: int, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WEBAPP_USERS_TARGET": f"127.0.0.1:{users_port}",
        "WEBAPP_PORT": str(port),
        "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
        "WEBAPP_LOG_LEVEL": "WARNING",
    }
    proc = spawn([sys.executable, "-m", "webapp"], env)
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the webapp did not become ready")


def peak_rss_mb(pid: int, reset: bool = False) -> float:
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed_calls(
    count: int,
    concurrency: int,
    call: Callable[[int], Awaitable[httpx.Response]],
    time_limit: float = 60.0,
) -> dict[str, float]:
    """Runs up to `count` calls (for at most `time_limit` s), `concurrency` at a time.

    Returns the latency percentiles in ms and calls/s.
    """
    latencies: list[float] = []
    queue = iter(range(count))
    stop_at = time.monotonic() + time_limit

    async def worker() -> None:
        for i in queue:
            if time.monotonic() > stop_at:
                return
            started = time.perf_counter()
            response = await call(i)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "per_second": round(len(latencies) / elapsed),
        "p50_ms": quantiles[49],
        "p99_ms": quantiles[98],
    }


def wrk(url: str, seconds: int, connections: int) -> dict[str, Any]:
    """GET load with wrk (a C client, so the client is not the bottleneck); {} without wrk."""
    if shutil.which("wrk") is None:
        return {}
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50, p99 = (re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out) for q in (50, 99))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(match: re.Match[str] | None) -> float | None:
        return round(float(match[1]) * scale[match[2]], 2) if match else None

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "client": "wrk",
        "per_second": float(rate[1]) if rate else None,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "non_2xx": int(errors[1]) if errors else 0,
    }


async def rows(count: int) -> AsyncIterator[bytes]:
    for start in range(0, count, 2000):
        batch = range(start, min(start + 2000, count))
        yield "".join(json.dumps({"username": f"bench{i:07d}"}) + "\n" for i in batch).encode()


async def bench_bulk(client: httpx.AsyncClient, pid: int, count: int) -> dict[str, Any]:
    peak_rss_mb(pid, reset=True)
    started = time.perf_counter()
    headers = {"content-type": "application/x-ndjson"}
    summary = (
        await client.post("/api/v1/users:import", content=rows(count), headers=headers)
    ).json()
    imported = time.perf_counter() - started
    base = peak_rss_mb(pid, reset=True)
    started, first, lines = time.perf_counter(), 0.0, 0
    async with client.stream("GET", "/users/") as response:
        async for chunk in response.aiter_bytes():
            first = first or time.perf_counter() - started
            lines += chunk.count(b"\n")
    return {
        "import_seconds": round(imported, 1),
        "import_created": summary.get("created_count"),
        "stream_lines": lines,
        "stream_seconds": round(time.perf_counter() - started, 1),
        "stream_first_line_ms": round(first * 1000, 1),
        "stream_peak_rss_growth_mb": round(peak_rss_mb(pid) - base, 1),
    }


async def bench_outage(client: httpx.AsyncClient, users: subprocess.Popen[bytes]) -> dict[str, Any]:
    users.terminate()
    users.wait(30)
    latencies, statuses = [], set()
    for _ in range(20):
        started = time.perf_counter()
        statuses.add((await client.get("/api/v1/users/1")).status_code)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "statuses": sorted(statuses),
        "max_ms": max(latencies),
        "median_ms": statistics.median(latencies),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    users_port, webapp_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as directory:
        users = start_users(Path(directory), users_port)
        webapp = await start_webapp(users_port, webapp_port)
        try:
            base = f"http://127.0.0.1:{webapp_port}"
            limits = httpx.Limits(max_connections=args.concurrency)
            async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:

                async def create(i: int) -> httpx.Response:
                    return await client.post("/api/v1/users", json={"username": f"api{i:07d}"})

                async def get(i: int) -> httpx.Response:
                    return await client.get(f"/api/v1/users/{i % 1000 + 1}")

                load = functools.partial(wrk, seconds=args.seconds, connections=args.concurrency)
                result = {
                    # httpx costs the client more CPU than the server: creates are client-bound.
                    "create_httpx": await timed_calls(1000, args.concurrency, create),
                    "get_by_id": load(f"{base}/api/v1/users/1")
                    or await timed_calls(args.requests, args.concurrency, get),
                    "healthz": load(f"{base}/healthz"),
                    "bulk": await bench_bulk(client, webapp.pid, args.users),
                    "users_down": await bench_outage(client, users),
                }
        finally:
            for proc in (webapp, users):
                proc.terminate()
                proc.wait(30)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5000, help="GETs when wrk is missing")
    parser.add_argument("--seconds", type=int, default=10, help="wrk run length")
    parser.add_argument("--concurrency", type=int, default=32)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
