"""gRPC load from Python: grpc.aio clients in separate processes, every status code checked.

For what h2load cannot do: a different request per call (CreateUser), server streams read by a
Python client (GetUsers, ExportUsers), bidirectional pipelining (LookupUsers). Each worker process
prints one JSON line; `run` starts them pinned to the generator's cores and adds them up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.procs import pinned
from scripts.bench.results import Load, percentiles_ms

MODES = ("get", "create", "list", "stream", "lookup", "export")
LOOKUP_WINDOW = 64  # lookups in flight on one LookupUsers stream


def run(
    mode: str, port: int, *, processes: int, concurrency: int, seconds: float,
    cores: str | None, user_id: int, users: int, tls_dir: str | None = None,
    token: str | None = None,
) -> Load:  # fmt: skip
    """`processes` workers share `concurrency` calls (streams: one each) for up to `seconds`;
    `token`, when given, goes on every call (`authorization: Bearer`)."""
    run_tag = secrets.token_hex(3)
    command = [
        sys.executable, "-m", "scripts.bench.grpc_load", mode, f"--port={port}",
        f"--concurrency={max(1, concurrency // processes)}", f"--seconds={seconds}",
        f"--user-id={user_id}", f"--users={users}",
    ]  # fmt: skip
    if tls_dir is not None:
        command.append(f"--tls-dir={tls_dir}")
    if token is not None:
        command.append(f"--token={token}")
    workers = [
        subprocess.Popen(pinned([*command, f"--tag={run_tag}{i}"], cores), stdout=subprocess.PIPE)
        for i in range(processes)
    ]
    try:
        reports = [_report(worker, seconds + 60) for worker in workers]
    finally:
        for worker in workers:  # a failed or stuck worker must not outlive the row
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    latencies = [ms for report in reports for ms in report["latencies_ms"]]
    p50, p99 = percentiles_ms(latencies)
    calls = sum(r["calls"] for r in reports)
    errors = sum(n for r in reports for code, n in r["codes"].items() if code != "OK")
    return Load(calls, max(r["seconds"] for r in reports), errors, p50, p99)


def _report(worker: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """A worker's JSON report; RuntimeError if it failed."""
    out, _ = worker.communicate(timeout=timeout)
    if worker.returncode != 0:
        raise RuntimeError(f"a load worker exited {worker.returncode}")
    report: dict[str, Any] = json.loads(out)
    return report


class WrongReplyError(Exception):
    """A call that succeeded with another answer than the one asked for."""


class Worker:
    """One process's share of the load, on one channel."""

    def __init__(self, args: argparse.Namespace, stub: users_pb2_grpc.UserServiceStub) -> None:
        self.args = args
        self.stub = stub
        self.codes: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.calls = 0
        self.stop_at = time.monotonic() + args.seconds
        token = args.token
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None

    async def unary_loop(self, lane: int) -> None:
        index = 0
        while time.monotonic() < self.stop_at:
            started = time.perf_counter()
            try:
                await self.unary_call(f"{self.args.tag}x{lane}x{index}")
            except grpc.aio.AioRpcError as error:
                self.codes[error.code().name] += 1
            except WrongReplyError:
                self.codes["WRONG_REPLY"] += 1
            else:
                self.codes["OK"] += 1
                self.calls += 1
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            index += 1

    async def unary_call(self, unique: str) -> None:
        metadata = self.metadata
        if self.args.mode == "get":
            get = users_pb2.GetUserRequest(id=self.args.user_id)
            user = await self.stub.GetUser(get, timeout=10, metadata=metadata)
            if user.id != get.id:
                raise WrongReplyError(f"GetUser({get.id}) answered user {user.id}")
        elif self.args.mode == "create":
            create = users_pb2.CreateUserRequest(username=unique, email=f"{unique}@example.com")
            user = await self.stub.CreateUser(create, timeout=10, metadata=metadata)
            if user.username != unique:
                raise WrongReplyError(f"CreateUser({unique}) answered {user.username}")
        else:
            page = users_pb2.ListUsersRequest(page_size=50)
            await self.stub.ListUsers(page, timeout=10, metadata=metadata)

    async def stream(self) -> None:
        """One GetUsers call for every user; each message counts as a call. Its latency is the
        time to the first message (the whole stream's time is what the rate says)."""
        started = time.perf_counter()
        request = users_pb2.GetUsersRequest()
        call = self.stub.GetUsers(request, timeout=self.args.seconds, metadata=self.metadata)
        try:
            async for _ in call:
                if not self.calls:
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.calls += 1
        except grpc.aio.AioRpcError as error:
            self.codes[error.code().name] += 1
        else:
            self.codes["OK" if self.calls == self.args.users else "SHORT"] += 1

    async def export(self) -> None:
        """One ExportUsers call for every user; each user counts as a call."""
        started = time.perf_counter()
        call = self.stub.ExportUsers(
            users_pb2.ExportUsersRequest(), timeout=self.args.seconds, metadata=self.metadata
        )
        try:
            async for batch in call:
                if not self.calls:  # timed to its first message, as the GetUsers stream is
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.calls += len(batch.users)
        except grpc.aio.AioRpcError as error:
            self.codes[error.code().name] += 1
        else:
            self.codes["OK" if self.calls == self.args.users else "SHORT"] += 1

    async def lookup(self) -> None:
        """LookupUsers, pipelined: up to LOOKUP_WINDOW lookups ahead of the answers (answered
        in order: each lookup's latency runs from its request's send to its answer)."""
        window = asyncio.Semaphore(LOOKUP_WINDOW)
        sent: deque[float] = deque()

        async def lookups() -> AsyncIterator[users_pb2.LookupUsersRequest]:
            index = 0
            while time.monotonic() < self.stop_at:
                await window.acquire()
                sent.append(time.perf_counter())
                yield users_pb2.LookupUsersRequest(id=1 + index % self.args.users)
                index += 1

        call = self.stub.LookupUsers(
            lookups(), timeout=self.args.seconds + 10, metadata=self.metadata
        )
        try:
            async for reply in call:
                window.release()
                self.latencies_ms.append((time.perf_counter() - sent.popleft()) * 1000)
                self.calls += reply.HasField("user")
                self.codes["OK" if reply.HasField("user") else "LOOKUP_ERROR"] += 1
        except grpc.aio.AioRpcError as error:
            self.codes[error.code().name] += 1


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """Plaintext, or TLS trusting tls_dir/ca.pem and presenting tls_dir/client.pem (mTLS)."""
    target = f"127.0.0.1:{args.port}"
    if args.tls_dir is None:
        return grpc.aio.insecure_channel(target)
    directory = Path(args.tls_dir)
    credentials = grpc.ssl_channel_credentials(
        (directory / "ca.pem").read_bytes(),
        (directory / "client.key").read_bytes(),
        (directory / "client.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(target, credentials)


async def work(args: argparse.Namespace) -> dict[str, Any]:
    async with _channel(args) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)  # a server that never answers
        worker = Worker(args, users_pb2_grpc.UserServiceStub(channel))
        started = time.perf_counter()
        if args.mode == "stream":
            await worker.stream()
        elif args.mode == "export":
            await worker.export()
        elif args.mode == "lookup":
            await asyncio.gather(*(worker.lookup() for _ in range(args.concurrency)))
        else:
            await asyncio.gather(*(worker.unary_loop(lane) for lane in range(args.concurrency)))
        return {
            "calls": worker.calls,
            "seconds": time.perf_counter() - started,
            "codes": dict(worker.codes),
            "latencies_ms": worker.latencies_ms,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--user-id", type=int, default=1)
    parser.add_argument("--users", type=int, default=1, help="users a full GetUsers streams")
    parser.add_argument("--tag", default="w", help="makes this worker's usernames unique")
    parser.add_argument("--tls-dir", default=None, help="ca.pem, client.pem, client.key: TLS")
    parser.add_argument("--token", default=None, help="an access token sent on every call")
    print(json.dumps(asyncio.run(work(parser.parse_args()))))


if __name__ == "__main__":
    main()
