"""Instructions per read by id of the webapp (GET /api/v1/users/{id}), under callgrind.

`python -m scripts.bench.webapp_instructions WAVE READS [ENV=VALUE ...]`: a users service
(plain, not under valgrind) seeded with 1,000 users, a webapp under `valgrind --tool=callgrind`
with the extra environment given (WEBAPP_METRICS_LISTEN_ADDRESS=..., OTEL_TRACES_SAMPLER=...).
Reads go in waves of WAVE on WAVE keep-alive connections, the webapp stopped (SIGSTOP) while a
wave is written, so that it finds the wave in one turn and coalesces it into one BatchGetUsers
whatever the machine's load; callgrind counts READS of them after 300 of warm-up. Prints the
instructions per read and the reads per BatchGetUsers (from the users service's RPC lines).
A load-independent measure where timed rows swing (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.ports import free_port
from testkit.waiting import wait_for_port

from scripts.bench.stack import seed

USERS = 1_000
WARM_UP = 300
_BATCH_LINE = b'"method": "/users.v1.UserService/BatchGetUsers"'


async def _waves(port: int, wave: int, reads: int, pid: int) -> int:
    """Sends `reads` reads in waves of `wave`; the number answered 200."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(wave)]
    ids = random.Random(7)  # noqa: S311 - the same ids in every run, not a secret

    async def answer(reader: asyncio.StreamReader) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200")

    ok = 0
    for _ in range(reads // wave):
        os.kill(pid, signal.SIGSTOP)  # the whole wave is written before the webapp looks
        for _, writer in connections:
            user = ids.randint(1, USERS)
            writer.write(f"GET /api/v1/users/{user} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await asyncio.sleep(0.002)  # the writes have reached the sockets
        os.kill(pid, signal.SIGCONT)
        ok += sum(await asyncio.gather(*(answer(reader) for reader, _ in connections)))
    for _, writer in connections:
        writer.close()
    return ok


def _instructions(callgrind_out: Path) -> int:
    totals = [
        line
        for line in callgrind_out.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))
    ]
    return int(totals[-1].split()[1])


def measure(wave: int, reads: int, extra_env: dict[str, str], workdir: Path) -> str:
    """One measurement, described in a line."""
    users_port, web_port = free_port(), free_port()
    users_log = workdir / "users.log"
    users_env = {
        **os.environ,
        "USERS_DATABASE_URL": f"sqlite:///{workdir / 'users.db'}",
        "USERS_LISTEN_ADDRESS": f"127.0.0.1:{users_port}",
        "USERS_AUTH_ENFORCED": "false",
        "USERS_WRITES_PER_SECOND": "0",
        "USERS_IMPORTS_PER_MINUTE": "0",
    }
    with users_log.open("wb") as sink:
        users = subprocess.Popen(
            [sys.executable, "-m", "users_service"], env=users_env, stdout=sink, stderr=sink
        )
    webapp = None
    out = workdir / "callgrind.out"
    try:
        if not wait_for_port(users_port, 120):
            raise SystemExit(f"the users service did not start:\n{users_log.read_text()}")
        asyncio.run(seed(users_port, USERS))
        web_env = {
            **os.environ,
            "WEBAPP_USERS_TARGET": f"127.0.0.1:{users_port}",
            "WEBAPP_PORT": str(web_port),
            "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
            "WEBAPP_WRITES_PER_SECOND": "0",
            **extra_env,
        }
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, "-m", "webapp"]
        with (workdir / "webapp.log").open("wb") as sink:
            webapp = subprocess.Popen(command, env=web_env, stdout=sink, stderr=sink)
        if not wait_for_port(web_port, 600):
            raise SystemExit("the webapp did not start under valgrind")
        asyncio.run(_waves(web_port, wave, WARM_UP, webapp.pid))
        before = users_log.read_bytes().count(_BATCH_LINE)
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(webapp.pid)], check=True, capture_output=True)
        ok = asyncio.run(_waves(web_port, wave, reads, webapp.pid))
        subprocess.run([*control, "off", str(webapp.pid)], check=True, capture_output=True)
        time.sleep(0.5)  # the users service's last lines
        batches = users_log.read_bytes().count(_BATCH_LINE) - before
    finally:
        if webapp is not None:
            webapp.terminate()
            webapp.wait(timeout=300)
        users.terminate()
        users.wait(timeout=60)
    per_read = _instructions(out) / reads
    return (
        f"{per_read:,.0f} instructions a read ({ok} of {reads} answered 200; {batches} "
        f"BatchGetUsers, {reads / max(batches, 1):.2f} reads each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wave", type=int, help="reads sent at once (one BatchGetUsers each)")
    parser.add_argument("reads", type=int, help="reads counted")
    parser.add_argument("env", nargs="*", help="the webapp's extra environment, NAME=VALUE")
    args = parser.parse_args()
    extra = dict(pair.split("=", 1) for pair in args.env)
    with tempfile.TemporaryDirectory(prefix="webapp-instructions-") as workdir:
        print(measure(args.wave, args.reads, extra, Path(workdir)))


if __name__ == "__main__":
    main()
