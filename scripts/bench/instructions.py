"""Instructions per call (callgrind): load-independent, for A/B comparisons on a shared machine.

Starts the users service under `valgrind --tool=callgrind` with instrumentation off, makes
`--warmup` calls, switches instrumentation on for `--calls` calls (`--concurrency` in flight on one
connection), off again, stops the server and divides the instructions of every thread of the
server (loop, writer, grpc's poller) by the calls. The store probe is pushed out of the window.

    .venv/bin/python -m scripts.bench.instructions create --calls 1000
    .venv/bin/python -m scripts.bench.instructions get --calls 1000
    .venv/bin/python -m scripts.bench.instructions create --threads --request-ids
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.servers import database_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _calls(
    stub: users_pb2_grpc.UserServiceStub, args: argparse.Namespace, tag: str, n: int
) -> None:
    c = args.concurrency

    async def lane(index: int) -> None:
        for i in range(index, n, c):
            if args.mode == "create":
                name = f"{tag}x{i}"
                create = users_pb2.CreateUserRequest(
                    username=name,
                    email=f"{name}@example.com",
                    request_id=f"req-{name}" if args.request_ids else "",
                )
                user = await stub.CreateUser(create, timeout=120)
                assert user.username == name, user  # noqa: S101 - a wrong reply spoils the count
            else:
                user = await stub.GetUser(users_pb2.GetUserRequest(id=1), timeout=120)
                assert user.id == 1, user  # noqa: S101

    await asyncio.gather(*(lane(index) for index in range(c)))


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def _measure(args: argparse.Namespace, port: int, pid: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 120)
        stub = users_pb2_grpc.UserServiceStub(channel)
        create = users_pb2.CreateUserRequest(username="seeded", email="seeded@example.com")
        await stub.CreateUser(create, timeout=120)  # user 1, for GetUser
        await _calls(stub, args, "warm", args.warmup)
        _control(pid, "-i", "on")
        started = time.monotonic()
        await _calls(stub, args, "timed", args.calls)
        seconds = time.monotonic() - started
        _control(pid, "-i", "off")
    print(f"{args.calls} calls in {seconds:.1f} s under valgrind", file=sys.stderr)


def _totals(out: Path) -> dict[str, int]:
    """Instructions by output file (one per thread with --threads)."""
    found = {}
    for path in sorted(out.parent.glob(out.name + "*")):
        lines = re.findall(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
        found[path.name] = max((int(n) for n in lines), default=0)  # both lines give the same total
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("create", "get"))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", action="store_true", help="count each thread apart")
    parser.add_argument("--request-ids", action="store_true", help="creates carry a request_id")
    parser.add_argument("--keep", type=Path, help="keep callgrind's output (callgrind_annotate)")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {
            **os.environ,
            **database_env(Path(tmp) / "users.db"),
            "USERS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
            "USERS_AUTH_ENFORCED": "false",
            "USERS_WRITES_PER_SECOND": "0",
            "USERS_STORE_PROBE_INTERVAL_SECONDS": "3600",
        }
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", f"--separate-threads={'yes' if args.threads else 'no'}",
            sys.executable, "-m", "users_service",
        ]  # fmt: skip
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            asyncio.run(_measure(args, port, server.pid))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        totals = _totals(out)
        print(f"{args.mode}: {sum(totals.values()) / args.calls:,.0f} instructions per call")
        for name, total in totals.items():
            if args.threads and total:
                print(f"  {name}: {total / args.calls:,.0f}")
            if args.keep is not None:
                suffix = name[len(out.name) :]
                shutil.copyfile(out.parent / name, args.keep.with_name(args.keep.name + suffix))


if __name__ == "__main__":
    main()
