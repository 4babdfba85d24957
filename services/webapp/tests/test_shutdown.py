"""SIGTERM in the middle of a burst of creates: every request completes or is refused unread."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import Callable

import httpx
import pytest
from testkit.bursts import run_burst

from .conftest import UsersService, Webapp

pytestmark = pytest.mark.slow

TOTAL = 1_200
CONCURRENCY = 64
# How a request ended, seen from the client: an answer, a connection that could not be made
# (nothing sent), or a connection that ended without an answer (sent, perhaps not read).
ANSWERED, REFUSED, DROPPED = "answered", "refused", "dropped"


class Creates:
    """`await creates(i)`: POST the i-th user with its Idempotency-Key; how it ended."""

    def __init__(self, http: httpx.AsyncClient, prefix: str) -> None:
        self._http = http
        self.prefix = prefix
        self.statuses: dict[int, int] = {}

    def username(self, index: int) -> str:
        return f"{self.prefix}{index:05}"

    async def __call__(self, index: int) -> str:
        try:
            response = await self._http.post(
                "/api/v1/users",
                json={"username": self.username(index)},
                headers={"Idempotency-Key": f"{self.prefix}-{index}"},
            )
        except httpx.ConnectError:
            return REFUSED
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            return DROPPED
        self.statuses[index] = response.status_code
        return ANSWERED


def client(app: Webapp) -> httpx.AsyncClient:
    # One keep-alive connection per worker, as a busy client holds them.
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    return app.client(timeout=30.0, limits=limits)


async def test_sigterm_mid_burst_completes_or_refuses_every_request_unread(
    spawn_users: Callable[..., UsersService],
    spawn_webapp: Callable[..., Webapp],
    uname: Callable[[str], str],
) -> None:
    users = spawn_users()
    # The burst comes from one address: its write rate limit (docs/limits.md) is off here.
    app = spawn_webapp(
        users.address, WEBAPP_SHUTDOWN_GRACE_SECONDS="10", WEBAPP_WRITES_PER_SECOND="0"
    )
    async with client(app) as http:
        creates = Creates(http, uname("sd")[3:9])
        burst = await run_burst(
            TOTAL,
            CONCURRENCY,
            creates,
            hook_after=TOTAL * 3 // 10,
            hook=lambda: app.process.proc.send_signal(signal.SIGTERM),
        )
    assert await asyncio.to_thread(app.process.proc.wait, 30) == 0
    counts = burst.counts()
    print(f"\nSIGTERM mid-burst: {dict(counts)}, in flight {burst.in_flight_at_hook}")
    assert set(creates.statuses.values()) == {201}, counts  # no error after the work started
    assert counts[ANSWERED] >= TOTAL * 3 // 10
    assert counts[REFUSED] > 0
    # Every answered create is stored; none of the others is: those were refused before they
    # were read (a connection that ended without an answer would be ambiguous: the lingering
    # keep-alive connections leave none).
    with sqlite3.connect(users.directory / "users.db") as db:
        stored = {row[0] for row in db.execute("SELECT username FROM users")}
    answered = {creates.username(i) for i in burst.indices(ANSWERED)}
    assert answered <= stored
    unanswered = {creates.username(i) for i in burst.indices(REFUSED) + burst.indices(DROPPED)}
    assert not unanswered & stored, "a request took effect without an answer"
    assert counts[DROPPED] == 0, counts
