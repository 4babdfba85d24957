"""The webapp against a users service on a UNIX socket (WEBAPP_USERS_TARGET=unix:///path): the JSON
API, the NDJSON stream, the event stream and readiness all work over it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit.processes import LoggedProcess
from testkit.waiting import wait_for_serving

from .conftest import AUTH_ENV, Webapp, unique


@pytest.fixture
def users_on_a_socket(tmp_path: Path) -> Iterator[str]:
    """A users service listening only on a UNIX socket; its target."""
    target = f"unix://{tmp_path / 'users.sock'}"
    env = {
        "USERS_LISTEN_ADDRESS": target,
        "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
        "USERS_GRACE_PERIOD_SECONDS": "1",
        **AUTH_ENV,
    }
    process = LoggedProcess([sys.executable, "-m", "users_service"], env)
    try:
        assert wait_for_serving(target, "users.v1.UserService", 20), process.log()
        yield target
    finally:
        process.stop()


async def test_the_webapp_serves_over_a_unix_socket_target(
    users_on_a_socket: str, spawn_webapp: Callable[..., Webapp]
) -> None:
    webapp = spawn_webapp(users_on_a_socket)
    async with webapp.client(timeout=10) as http:  # as the tests' admin
        assert (await http.get("/readyz")).status_code == 200
        name = unique("sock")
        created = await http.post("/api/v1/users", json={"username": name})
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        assert (await http.get(f"/api/v1/users/{user_id}")).json()["username"] == name
        async with http.stream("GET", "/users/") as stream:
            lines = [json.loads(line) async for line in stream.aiter_lines() if line]
        assert [u["username"] for u in lines] == [name]
        async with http.stream("GET", "/api/v1/users/events") as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            other = unique("sock")
            await http.post("/api/v1/users", json={"username": other})
            async with asyncio.timeout(10):
                async for line in events.aiter_lines():
                    if line.startswith("data:") and other in line:
                        break
