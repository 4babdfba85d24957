"""The webapp's channel over several users replicas: round robin, and a draining one skipped."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import UsersService, Webapp

# Two users services and a webapp of the test's own, and a drain.
pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[UsersService]]:
    """Two users services, each with a database of its own (the balancing is what is tested)."""
    started = [UsersService(tmp_path / name).start() for name in ("a", "b")]
    yield started
    for service in started:
        service.stop()


def served(service: UsersService, request_ids: list[str]) -> int:
    """How many of these request ids the service has logged an RPC for."""
    assert service.process is not None
    lines = [line for line in service.process.lines if '"method"' in line]
    return sum(any(request_id in line for line in lines) for request_id in request_ids)


async def get_many(http: httpx.AsyncClient, count: int) -> list[str]:
    """`count` reads, each with its own request id; every one must be answered by a replica."""
    ids = [f"lb-{uuid.uuid4().hex}" for _ in range(count)]
    for request_id in ids:
        response = await http.get("/api/v1/users/1", headers={"X-Request-ID": request_id})
        assert response.status_code == 404, response.text  # both databases are empty
    return ids


def spread(replicas: list[UsersService], request_ids: list[str]) -> list[int]:
    """Calls per replica, once every call's log line is in (they race the answers: bounded)."""
    deadline = time.monotonic() + 5
    while sum(counts := [served(s, request_ids) for s in replicas]) < len(request_ids):
        assert time.monotonic() < deadline, counts
        time.sleep(0.02)
    return counts


async def test_calls_spread_over_every_address_and_skip_a_draining_replica(
    replicas: list[UsersService], spawn_webapp: Callable[..., Webapp]
) -> None:
    first, second = replicas
    assert first.process is not None
    app = spawn_webapp(f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}")
    async with app.client(timeout=10) as http:
        # Each address joins the rotation once connected and SERVING: wait for both (bounded).
        deadline = time.monotonic() + 10
        while 0 in spread(replicas, await get_many(http, 2)):
            assert time.monotonic() < deadline, "a replica never joined the rotation"
        before = spread(replicas, await get_many(http, 20))

        # SIGTERM: NOT_SERVING at once, still serving for 0.5 s, then refusing, then gone.
        first.process.proc.send_signal(signal.SIGTERM)
        first.process.wait_for_line('"message": "draining"')
        await asyncio.sleep(0.1)  # the health update reaches the webapp's channel
        during = spread(replicas, await get_many(http, 20))
    assert first.process.proc.poll() is None, "the calls ran after the drain, not during it"
    assert min(before) >= 8, before  # round robin: 10 each
    assert during == [0, 20]
