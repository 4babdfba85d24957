"""Users service down -> fast 503s -> back on the same port -> 200s; graceful webapp shutdown."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from typing import Any

import httpx
import pytest

from .conftest import UsersService, Webapp

# Each test starts a webapp of its own and waits on real outages and drains.
pytestmark = pytest.mark.slow

FAST = 1.0  # seconds a request may take to answer 503 while the users service is down


async def _requests_while_down(client: httpx.AsyncClient, user_id: int) -> list[httpx.Request]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/")).text)
    form = {"csrf_token": token.group(1) if token else "", "username": "down-form"}
    build = client.build_request
    return [
        build("GET", "/api/v1/users"),
        build("GET", f"/api/v1/users/{user_id}"),
        build("GET", "/api/v1/users/by-username/someone"),
        build("POST", "/api/v1/users", json={"username": "down-user"}),
        build("PATCH", f"/api/v1/users/{user_id}", json={"display_name": "x"}),
        build("DELETE", f"/api/v1/users/{user_id}"),
        build(
            "POST",
            "/api/v1/users:import",
            content=b'{"username": "down-import"}\n',
            headers={"content-type": "application/x-ndjson"},
        ),
        build("GET", "/users/"),
        build("GET", "/api/v1/users/events"),
        build("GET", "/", headers={"accept": "text/html"}),
        build("GET", f"/ui/users/{user_id}", headers={"accept": "text/html"}),
        build("POST", "/ui/users", data=form, headers={"accept": "text/html"}),
        build("GET", "/readyz"),
    ]


async def test_users_down_is_fast_503_everywhere_then_recovers_without_restart(
    own_stack: tuple[UsersService, Webapp], spawn_users: Any
) -> None:
    users, app = own_stack
    async with app.client(timeout=10.0) as client:
        created = await client.post("/api/v1/users", json={"username": "survivor"})
        assert created.status_code == 201
        user_id = created.json()["id"]
        requests = await _requests_while_down(client, user_id)

        users.stop()
        slowest = 0.0
        for request in requests:
            started = time.monotonic()
            response = await client.send(request)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (request.url, response.text)
            assert response.headers["retry-after"] == "1"
            assert elapsed < FAST, (request.url, elapsed)
            slowest = max(slowest, elapsed)
        print(
            f"\n{len(requests)} endpoints answered 503 while down, slowest {slowest * 1000:.0f} ms"
        )
        assert (await client.get("/healthz")).status_code == 200
        assert "UNAVAILABLE" in (await client.get("/readyz")).json()["detail"]

        spawn_users(port=users.port)  # same port, same database file
        deadline = time.monotonic() + 5
        while (response := await client.get(f"/api/v1/users/{user_id}")).status_code != 200:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.1)
        assert response.json()["username"] == "survivor"
        assert (await client.get("/readyz")).status_code in (200, 503)  # cached for 1 s
        assert app.process.proc.poll() is None  # the same webapp process throughout


async def test_sigterm_ends_open_event_streams_and_finishes_in_flight_responses(
    users: Any, spawn_webapp: Any, make_user: Any
) -> None:
    for _ in range(3):
        await make_user("drain")
    app = spawn_webapp(users.address)
    async with (
        app.client(timeout=10.0) as client,
        client.stream("GET", "/api/v1/users/events") as events,
        client.stream("GET", "/users/") as ndjson,
    ):
        statuses = (events.status_code, ndjson.status_code)
        assert statuses == (200, 200), f"{statuses}\n{app.process.log()}"
        lines = ndjson.aiter_lines()
        first = json.loads(await anext(lines))
        started = time.monotonic()
        app.process.proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) async for line in lines]  # the in-flight stream completes
        assert [first, *rest] == sorted([first, *rest], key=lambda u: u["id"])
        assert len(rest) >= 2
        async with asyncio.timeout(5):
            body = [line async for line in events.aiter_lines()]  # ends cleanly, no error
        assert body[0].startswith(": subscribed")
    assert app.process.proc.wait(10) == 0
    assert time.monotonic() - started < 5  # not the whole grace period
    assert "Traceback" not in app.process.log()
