"""Instructions per GetUser under callgrind: load-independent, where CPU per call is not.

    python -m scripts.bench.instructions users [--calls 1000] [--in-flight 1] [--env K=V ...]
    python -m scripts.bench.instructions echo

The server (the users service as the bench's plain rows run it, or the tuned echo) runs under
`valgrind --tool=callgrind --instr-atstart=no`; after 300 calls of warm-up, instrumentation is on
for `--calls` GetUser calls (h2load, one connection), with idle seconds on either side (the
toggle takes effect when valgrind next polls); prints the instructions per call
(docs/performance.md, "The reply cache").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from testkit.ports import free_port
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.h2load import GRPC_HEADERS, frame
from scripts.bench.peers.canned import canned_user

ROOT = Path(__file__).resolve().parents[2]
WARM_UP = 300
SETTLE_SECONDS = 3.0
START_SECONDS = 600.0  # python's start under valgrind, on a slow shared machine


def _command(kind: str, port: int) -> list[str]:
    if kind == "users":
        return [sys.executable, "-m", "users_service"]
    return [sys.executable, "-m", "scripts.bench.peers.tuned_echo", "--uvloop", "--port", str(port)]


def _users_env(port: int, database: Path) -> dict[str, str]:
    return {
        "USERS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "USERS_DATABASE_URL": f"sqlite:///{database}",
        "USERS_AUTH_ENFORCED": "false",
        "USERS_WRITES_PER_SECOND": "0",
        "USERS_STORE_PROBE_INTERVAL_SECONDS": "3600",  # no probe in the measured window
    }


async def _user_id(port: int, kind: str) -> int:
    """The id to read, once the server answers: a created user's (users), the canned one's."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), START_SECONDS)
        if kind != "users":
            return canned_user().id
        request = users_pb2.CreateUserRequest(
            username="user-0000001", email="user-0000001@example.com", display_name="User 1"
        )
        user: users_pb2.User = await users_pb2_grpc.UserServiceStub(channel).CreateUser(request)
        return user.id


def _load(port: int, body: Path, calls: int, in_flight: int) -> str:
    url = f"http://127.0.0.1:{port}/users.v1.UserService/GetUser"
    command = ["h2load", f"-n{calls}", "-c1", f"-m{in_flight}", "-t1", f"-d{body}", *GRPC_HEADERS]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    found = re.search(r"requests: .*", out)
    return found.group(0) if found else out


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def measure(kind: str, calls: int, in_flight: int, env: dict[str, str], workdir: Path) -> float:
    """Instructions per GetUser of the `kind` server (users or echo)."""
    port = free_port()
    out = workdir / "callgrind.out"
    full_env = {**os.environ, **_users_env(port, workdir / "users.db"), **env}
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with (workdir / "server.log").open("w") as log:
        server = subprocess.Popen(
            [*valgrind, *_command(kind, port)], env=full_env, cwd=ROOT, stdout=log, stderr=log
        )
        try:
            body = workdir / "body"
            body.write_bytes(frame(users_pb2.GetUserRequest(id=asyncio.run(_user_id(port, kind)))))
            print("warm-up:", _load(port, body, WARM_UP, in_flight), flush=True)
            _control(server.pid, "-i", "on")
            time.sleep(SETTLE_SECONDS)
            print("measured:", _load(port, body, calls, in_flight), flush=True)
            time.sleep(SETTLE_SECONDS)
            _control(server.pid, "-i", "off")
            _control(server.pid, "-d")
        finally:
            server.kill()
            server.wait()
    totals = [
        int(line.split()[1])
        for dump in workdir.glob("callgrind.out*")
        for line in dump.read_text().splitlines()
        if line.startswith("totals:")
    ]
    return sum(totals) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("users", "echo"))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=1, help="h2load -m (1: steadiest)")
    parser.add_argument("--env", action="append", default=[], help="K=V for the server")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="userstack-instructions-") as tmp:
        per_call = measure(args.kind, args.calls, args.in_flight, env, Path(tmp))
    print(f"{args.kind} {env or ''} instructions per GetUser: {per_call:,.0f}")


if __name__ == "__main__":
    main()
