"""Reads by id coalesced into BatchGetUsers calls (reads.py), against a real users service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest


def batch_calls(users: Any) -> list[dict[str, Any]]:
    """The users service's log lines for BatchGetUsers calls, so far."""
    lines = (json.loads(line) for line in users.process.lines if line.startswith("{"))
    return [line for line in lines if line.get("method", "").endswith("/BatchGetUsers")]


async def test_reads_that_arrive_together_share_one_call_and_each_get_their_user(
    users: Any, in_process: Any, make_user: Any
) -> None:
    made = [await make_user("batch") for _ in range(30)]
    _, client = await in_process(users.address)
    ids = [user["id"] for user in made] + [made[0]["id"], 2**62]  # a repeat and a miss
    before = len(batch_calls(users))

    responses = await asyncio.gather(
        *(
            client.get(f"/api/v1/users/{i}", headers={"X-Request-ID": f"r{n}"})
            for n, i in enumerate(ids)
        )
    )

    assert [r.json() for r in responses[:30]] == made
    assert responses[30].json() == made[0]
    assert responses[31].status_code == 404
    assert responses[31].json()["detail"] == f"user {2**62} not found"
    assert responses[31].json()["request_id"] == "r31"
    users.process.wait_for_line('"request_id": "r0"', "BatchGetUsers")
    [call] = batch_calls(users)[before:]  # one call for all 32 reads, under the first one's id
    assert (call["code"], call["request_id"]) == ("OK", "r0")


async def test_a_read_alone_goes_out_under_its_own_request_id(
    http: httpx.AsyncClient, users: Any, make_user: Any
) -> None:
    user = await make_user("alone")
    response = await http.get(f"/api/v1/users/{user['id']}", headers={"X-Request-ID": "alone-1"})
    assert response.json() == user
    users.process.wait_for_line('"request_id": "alone-1"', "BatchGetUsers OK")


@contextlib.contextmanager
def stalled(service: Any) -> Iterator[None]:
    """The users service frozen (SIGSTOP): its connections stay open, nothing answers."""
    os.kill(service.process.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(service.process.proc.pid, signal.SIGCONT)


async def test_each_read_in_a_call_stops_waiting_at_its_own_deadline(
    spawn_users: Any, in_process: Any, caplog: pytest.LogCaptureFixture
) -> None:
    users = spawn_users()
    _, client = await in_process(users.address)
    assert (await client.get("/api/v1/users/1")).status_code == 404  # the channel is up

    async def timed(budget: str) -> tuple[int, float]:
        started = time.monotonic()
        response = await client.get("/api/v1/users/1", headers={"X-Request-Timeout": budget})
        return response.status_code, time.monotonic() - started

    with stalled(users):
        (short, short_took), (long, long_took) = await asyncio.gather(timed("0.3"), timed("1.5"))
    # One call for both, as long as the longer budget; the shorter read is answered on time.
    assert (short, long) == (504, 504)
    assert 0.3 <= short_took < 1.0
    assert long_took >= 1.5
    [failed] = [r.getMessage() for r in caplog.records if r.name == "webapp.reads"]
    assert "failed with DEADLINE_EXCEEDED for requests" in failed
    assert len(failed.partition(" for requests ")[2].split()) == 2
