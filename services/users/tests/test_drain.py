"""A drain under load: SIGTERM in the middle of a burst of creates from a plain grpc.aio client."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from testkit.bursts import run_burst
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc

from .conftest import ServerProcess

pytestmark = pytest.mark.slow

TOTAL = 10_000
CONCURRENCY = 256


def request(index: int) -> users_pb2.CreateUserRequest:
    """The index-th create of the burst, with its own idempotency key."""
    return users_pb2.CreateUserRequest(username=f"burst{index:05}", request_id=f"burst-{index}")


class Creates:
    """The burst's calls: `await creates(i)` makes the i-th create and returns how it ended (the
    status code's name); the id of each user created is kept in `created`."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = users_pb2_grpc.UserServiceStub(channel)
        self.created: dict[int, int] = {}

    async def __call__(self, index: int) -> str:
        try:
            user = await self._stub.CreateUser(request(index), timeout=30)
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)
        self.created[index] = user.id
        return "OK"


def drain_log(lines: list[str]) -> dict[str, Any]:
    """The drain's figures from the server's log: its duration, the calls the gate held."""
    records: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # Seen once in CI under heavy load: a per-RPC line cut by the SIGTERM line (left for
            # a later look, see the session note); the drain's own lines are what count here.
            continue
        if isinstance(record, dict):
            records.setdefault(record["message"], record)
    started = datetime.fromisoformat(records["draining"]["time"])
    stopped = datetime.fromisoformat(records["stopped"]["time"])
    return {
        "drain_seconds": (stopped - started).total_seconds(),
        "held_calls": records["stopping"]["held_calls"],
        "quiet": records["stopping"]["quiet"],
        "lame_duck_seconds": records["stopping"]["lame_duck_seconds"],
    }


def stored_users(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return dict(conn.execute("SELECT username, id FROM users"))


async def test_sigterm_mid_burst_ends_every_call_ok_or_unavailable_and_loses_none(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path, admin_token: str
) -> None:
    db = tmp_path / "burst" / "users.db"
    # The burst's creates come from one caller: the write rate limit (limits.py) is off here.
    proc = spawn_server(db, USERS_GRACE_PERIOD_SECONDS="10", USERS_WRITES_PER_SECOND="0")
    async with aio_channel(proc.target, token=admin_token) as channel:
        creates = Creates(channel)
        burst = await run_burst(
            TOTAL,
            CONCURRENCY,
            creates,
            hook_after=TOTAL * 3 // 10,
            hook=lambda: proc.process.send_signal(signal.SIGTERM),
        )
    assert await asyncio.to_thread(proc.process.wait, 30) == 0
    counts = burst.counts()
    figures = {**drain_log(proc.lines), "in_flight_at_signal": burst.in_flight_at_hook}
    print(f"\nSIGTERM mid-burst: {dict(counts)} {figures}")  # the figures, with pytest -s
    assert set(counts) <= {"OK", "UNAVAILABLE"}, (counts, figures)
    assert counts["OK"] >= TOTAL * 3 // 10
    assert counts["UNAVAILABLE"] > 0
    assert figures["quiet"], "the lame duck ran out before the clients stopped sending"

    # Every acknowledged user is stored under the id it was answered with; no refused one is.
    created = creates.created
    stored = stored_users(db)
    assert {request(i).username: created[i] for i in burst.indices("OK")}.items() <= stored.items()
    refused = {request(i).username for i in burst.indices("UNAVAILABLE")}
    assert not refused & stored.keys()
    assert len(stored) == counts["OK"]

    # A new server on the same file: retrying every call with its idempotency key returns the
    # same user for the acknowledged ones and creates each refused one, once.
    restarted = spawn_server(db, USERS_WRITES_PER_SECOND="0")
    async with aio_channel(restarted.target, token=admin_token) as channel:
        retries = Creates(channel)
        retried = await run_burst(TOTAL, CONCURRENCY, retries)
    assert retried.counts() == {"OK": TOTAL}
    assert {i: retries.created[i] for i in created} == created
    assert len(stored_users(db)) == TOTAL
