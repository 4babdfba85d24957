"""Instructions per call (callgrind): load-independent, for A/B comparisons on a shared machine.

Starts a server under `valgrind --tool=callgrind` with instrumentation off (the users service as
the bench's plain rows run it, or `--server echo`: the tuned echo), makes `--warmup` calls,
switches instrumentation on for `--calls` calls (`--concurrency` in flight on one connection),
off again, and divides the instructions of every thread of the server (loop, writer, grpc's
poller) by the calls. The toggle takes effect when valgrind next polls: idle seconds on either
side keep the window exact. The store probe is pushed out of the window.

    .venv/bin/python -m scripts.bench.instructions create --calls 1000
    .venv/bin/python -m scripts.bench.instructions create --threads --request-ids
    .venv/bin/python -m scripts.bench.instructions get --concurrency 1
    .venv/bin/python -m scripts.bench.instructions get --env USERS_REPLY_CACHE_ENTRIES=0
    .venv/bin/python -m scripts.bench.instructions get --server echo
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from testkit.ports import free_port
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import canned_user
from scripts.bench.servers import database_env

SETTLE_SECONDS = 3.0
START_SECONDS = 600.0  # python's start under valgrind, on a slow shared machine


async def _calls(
    stub: users_pb2_grpc.UserServiceStub, args: argparse.Namespace, tag: str, n: int, user_id: int
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
                user = await stub.GetUser(users_pb2.GetUserRequest(id=user_id), timeout=120)
                assert user.id == user_id, user  # noqa: S101

    await asyncio.gather(*(lane(index) for index in range(c)))


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


async def _measure(args: argparse.Namespace, port: int, pid: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), START_SECONDS)
        stub = users_pb2_grpc.UserServiceStub(channel)
        user_id = canned_user().id
        if args.server == "users":  # user 1, for GetUser
            create = users_pb2.CreateUserRequest(username="seeded", email="seeded@example.com")
            user_id = (await stub.CreateUser(create, timeout=120)).id
        await _calls(stub, args, "warm", args.warmup, user_id)
        _control(pid, "-i", "on")
        await asyncio.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        await _calls(stub, args, "timed", args.calls, user_id)
        seconds = time.monotonic() - started
        await asyncio.sleep(SETTLE_SECONDS)
        _control(pid, "-i", "off")
    print(f"{args.calls} calls in {seconds:.1f} s under valgrind", file=sys.stderr)


def _totals(out: Path) -> dict[str, int]:
    """Instructions by output file (one per thread with --threads)."""
    found = {}
    for path in sorted(out.parent.glob(out.name + "*")):
        lines = re.findall(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
        found[path.name] = max((int(n) for n in lines), default=0)  # both lines give the same total
    return found


def _server(args: argparse.Namespace, port: int) -> list[str]:
    if args.server == "echo":
        return ["-m", "scripts.bench.peers.tuned_echo", "--uvloop", "--port", str(port)]
    return ["-m", "users_service"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("create", "get"))
    parser.add_argument("--server", choices=("users", "echo"), default="users")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", action="store_true", help="count each thread apart")
    parser.add_argument("--request-ids", action="store_true", help="creates carry a request_id")
    parser.add_argument("--env", action="append", default=[], help="K=V for the server")
    parser.add_argument("--keep", type=Path, help="keep callgrind's output (callgrind_annotate)")
    args = parser.parse_args()
    if args.server == "echo" and args.mode != "get":
        parser.error("the echo answers GetUser only")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {
            **os.environ,
            **database_env(Path(tmp) / "users.db"),
            "USERS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
            "USERS_AUTH_ENFORCED": "false",
            "USERS_WRITES_PER_SECOND": "0",
            "USERS_STORE_PROBE_INTERVAL_SECONDS": "3600",
            **dict(item.split("=", 1) for item in args.env),
        }
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", f"--separate-threads={'yes' if args.threads else 'no'}",
            sys.executable, *_server(args, port),
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
