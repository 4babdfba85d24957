"""The starvation row (issue 16): a users service on a million users (SQLite), one client looping
the worst cheap requests, another timing GetUser beside it; the GetUser p99 against its target.

The drill is testkit.starvation's, the one test_starvation.py runs (with a looser ceiling: it
runs unpinned, beside other suites). Its server (start(): not one of stack.py's, so that a run
without the row pays nothing; ~18 s with the file) runs on the server core, both clients on the
load core; `make bench` takes ~1 min longer with it. The row's rate is the cheap requests'
(one at a time, as fast as they are answered), its p50/p99 GetUser's (200 calls a second, each
on its own schedule), its CPU per 1,000 the server's per cheap request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from functools import partial
from typing import Any

from testkit.bulk_users import write_users
from users_service.store.sqlite_migrations import apply_migrations

from scripts.bench.plan import Row, Settings
from scripts.bench.procs import Server, pinned
from scripts.bench.results import Load, percentiles_ms
from scripts.bench.servers import database_env
from scripts.bench.stack import Stack

SERVER = "users-million"
USERS = 1_000_000
TARGET_P99_MS = 50.0
# The hammer loops this long before GetUser is timed (its loop under way).
SETTLE_SECONDS = 1.0
_DRILL = [sys.executable, "-m", "testkit.starvation"]


def rows(settings: Settings, *, quick: bool) -> list[Row]:
    """The row, measured 2.5 times as long as a throughput row (10 s in `make bench`: 2,000
    GetUser calls per repetition, the p99 the 20th slowest). None in a quick run: on 100,000
    users it added ~10 s to bench-quick (the file, a server, two client processes)."""
    if quick:
        return []
    load = partial(_load, users=USERS, seconds=settings.seconds * 2.5)
    return [Row(name(USERS), SERVER, "cheap req/s", load, (SERVER,))]


def name(users: int) -> str:
    """The row's name: its p50/p99 are GetUser's."""
    return f"worst cheap requests + GetUser p99, {users:,} users"


def start(stack: Stack, rows: list[Row]) -> None:
    """The row's users file and its server, when the run has the row (before any row runs)."""
    if not any(row.server == SERVER for row in rows):
        return
    database = stack.workdir / "million" / "users.db"
    write_users(database, USERS, apply_migrations)
    env = {
        **database_env(database),
        "USERS_LISTEN_ADDRESS": "127.0.0.1:{port}",
        "USERS_GRACE_PERIOD_SECONDS": "2",
        "USERS_AUTH_ENFORCED": "false",  # as the other rows' "users" (loopback only)
    }
    args = ["-m", "users_service"]
    stack.servers[SERVER] = Server.start(SERVER, args, env, stack.cores.server, stack.workdir)


def _load(stack: Stack, users: int, seconds: float) -> Load:
    target = f"127.0.0.1:{stack[SERVER].port}"
    hammer_command = pinned([*_DRILL, "hammer", target], stack.cores.load)
    with subprocess.Popen(hammer_command, stdout=subprocess.PIPE, text=True) as hammer:
        if hammer.stdout is None or hammer.stdout.readline() != "hammering\n":
            raise SystemExit(f"the starvation row's hammer did not start ({hammer.wait()})")
        started = time.monotonic()
        time.sleep(SETTLE_SECONDS)
        try:
            probe = _probe(stack, target, users, seconds)
        finally:
            hammer.terminate()  # it ends the call in flight, prints its count, exits 0
        made = hammer.stdout.readline()
        hammered = time.monotonic() - started
        hammer_failed = hammer.wait(timeout=60) != 0
    latencies: list[float] = probe["times_ms"]
    p50, p99 = percentiles_ms(latencies)
    errors = int(probe["failed"]) + int(hammer_failed)
    return Load(int(made or 0), hammered, errors, p50, p99)


def _probe(stack: Stack, target: str, users: int, seconds: float) -> Any:
    command = pinned([*_DRILL, "probe", target, str(users), str(seconds)], stack.cores.load)
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=seconds + 60
    )
    if done.returncode:
        raise SystemExit(f"the starvation row's probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def verdicts(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The row's median p99 against TARGET_P99_MS (none if the row did not run)."""
    out = []
    for row in summary:
        if row["server"] == SERVER and row["p99_ms"] is not None:
            met = row["p99_ms"] < TARGET_P99_MS
            out.append({"row": row["name"], "p99_ms": row["p99_ms"], "target_ms": TARGET_P99_MS,
                        "met": met})  # fmt: skip
    return out


def markdown(verdicts: list[dict[str, Any]]) -> str:
    """The latency targets, a table after the run's (empty when the row did not run)."""
    if not verdicts:
        return ""
    lines = ["", "| latency target | p99 ms (median) | target |", "|---|---:|---:|"]
    for v in verdicts:
        mark = "ok" if v["met"] else "MISSED"
        lines.append(f"| {v['row']} | {v['p99_ms']:g} | < {v['target_ms']:g} {mark} |")
    return "\n".join(lines) + "\n"
