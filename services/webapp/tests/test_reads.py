"""Reads by id coalesced into BatchGetUsers calls (reads.py), against a real users service."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from users.v1 import users_pb2
from webapp import caller
from webapp.caller import authorization_var
from webapp.gateway.errors import UserNotFoundError
from webapp.gateway.reads import MAX_BATCH

from .conftest import ADMIN_HEADERS


def batch_calls(users: Any) -> list[dict[str, Any]]:
    """The users service's log lines for BatchGetUsers calls, so far."""
    lines = (json.loads(line) for line in users.process.lines if line.startswith("{"))
    return [line for line in lines if line.get("method", "").endswith("/BatchGetUsers")]


async def calls_for(users: Any, client: httpx.AsyncClient, before: int) -> list[dict[str, Any]]:
    """The BatchGetUsers calls logged since `before` calls, once all of them are in the log.

    The server writes a call's line after answering it; a read sent after the others, alone,
    is logged after all of theirs.
    """
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    await client.get("/api/v1/users/1", headers={"X-Request-ID": sentinel})
    users.process.wait_for_line(f'"request_id": "{sentinel}"', "BatchGetUsers")
    calls = batch_calls(users)[before:]
    assert calls[-1]["request_id"] == sentinel
    return calls[:-1]


def reads_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What webapp.gateway.reads logged in this test."""
    return [
        record.getMessage() for record in caplog.records if record.name == "webapp.gateway.reads"
    ]


@pytest.fixture
async def own_users(spawn_users: Any, in_process: Any) -> tuple[Any, FastAPI, httpx.AsyncClient]:
    """A private users service, and the app in this process with its channel to it up."""
    users = spawn_users()
    app, client = await in_process(users.address)
    assert (await client.get("/api/v1/users/1")).status_code == 404
    return users, app, client


async def test_reads_that_arrive_together_share_one_call_and_each_get_their_user(
    users: Any, in_process: Any, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    made = [await make_user("batch") for _ in range(30)]
    _, client = await in_process(users.address)
    caplog.set_level(logging.DEBUG, logger="webapp.gateway.reads")
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
    [call] = await calls_for(users, client, before)  # one call for all 32, under the first's id
    assert (call["code"], call["request_id"]) == ("OK", "r0")
    [carried] = [line for line in reads_log(caplog) if line.startswith("BatchGetUsers r0 ")]
    assert carried.split()[-32:] == [f"r{n}" for n in range(32)]  # every read's id, at DEBUG


async def test_more_reads_than_a_call_takes_go_out_in_several(
    users: Any, in_process: Any, make_user: Any
) -> None:
    user = await make_user("many")
    _, client = await in_process(users.address)
    before = len(batch_calls(users))
    count = MAX_BATCH + MAX_BATCH // 2
    responses = await asyncio.gather(
        *(client.get(f"/api/v1/users/{user['id']}") for _ in range(count))
    )
    assert {r.status_code for r in responses} == {200}
    assert len(await calls_for(users, client, before)) == 2


async def test_a_read_alone_goes_out_under_its_own_request_id(
    http: httpx.AsyncClient, users: Any, make_user: Any
) -> None:
    user = await make_user("alone")
    response = await http.get(f"/api/v1/users/{user['id']}", headers={"X-Request-ID": "alone-1"})
    assert response.json() == user
    users.process.wait_for_line('"request_id": "alone-1"', "BatchGetUsers OK")


@pytest.mark.slow
async def test_a_read_no_user_can_match_fails_alone(
    own_users: tuple[Any, FastAPI, httpx.AsyncClient],
) -> None:
    _, app, _ = own_users
    authorization_var.set(ADMIN_HEADERS["authorization"])  # this test's caller: the admin
    created = await app.state.gateway.users.CreateUser(
        users_pb2.CreateUserRequest(username="solo"), metadata=caller.outgoing_metadata()
    )
    reads = app.state.gateway.reads
    results: list[object] = await asyncio.gather(
        reads.user(0), reads.user(created.id), return_exceptions=True
    )
    impossible, found = results
    assert isinstance(impossible, UserNotFoundError)
    assert found == created  # not failed by the other read's id


@pytest.mark.slow
async def test_a_failed_call_answers_every_read_on_it(
    own_users: tuple[Any, FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    users, _, client = own_users
    users.stop()
    responses = await asyncio.gather(*(client.get(f"/api/v1/users/{i}") for i in (1, 2, 3)))
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert {r.headers["retry-after"] for r in responses} == {"1"}
    [failed] = reads_log(caplog)
    assert "failed with UNAVAILABLE for requests" in failed


@pytest.mark.slow
async def test_each_read_in_a_call_stops_waiting_at_its_own_deadline(
    own_users: tuple[Any, FastAPI, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    users, _, client = own_users

    async def timed(budget: str) -> tuple[int, float]:
        started = time.monotonic()
        response = await client.get("/api/v1/users/1", headers={"X-Request-Timeout": budget})
        return response.status_code, time.monotonic() - started

    with users.stalled():
        (short, short_took), (long, long_took) = await asyncio.gather(timed("0.3"), timed("1.5"))
    # One call for both, as long as the longer budget; the shorter read is answered on time.
    assert (short, long) == (504, 504)
    assert 0.3 <= short_took < 1.0
    assert long_took >= 1.5
    [failed] = reads_log(caplog)
    assert "failed with DEADLINE_EXCEEDED for requests" in failed
    assert len(failed.partition(" for requests ")[2].split()) == 2
