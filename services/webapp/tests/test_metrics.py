"""The webapp's metrics port: RED per route template, the users channel's calls, read batches,
SSE subscribers and readiness, scraped from a real webapp process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from testkit.metrics import Samples, scrape, value
from testkit.ports import free_port

from .conftest import UsersService, Webapp

# Each test starts a webapp process of its own.
pytestmark = pytest.mark.slow

REQUESTS = "http_server_request_duration_seconds_count"
CLIENT_CALLS = "grpc_client_call_duration_seconds_count"
USER_ROUTE = "/api/v1/users/{user_id:int}"


@pytest.fixture
def metered(users: UsersService, spawn_webapp: Callable[..., Webapp]) -> tuple[Webapp, int]:
    """A webapp of the test's own with its metrics port on, and that port."""
    port = free_port()
    return spawn_webapp(users.address, WEBAPP_METRICS_LISTEN_ADDRESS=f"127.0.0.1:{port}"), port


def settled(port: int, requests: int) -> Samples:
    """The metrics once `requests` requests are counted: the middleware records a request after
    its response has gone, so the client may ask a moment before (bounded wait)."""
    for _ in range(200):
        samples = scrape(port)
        counted = sum(v for (name, _), v in samples.items() if name == REQUESTS)
        if counted >= requests:
            return samples
        time.sleep(0.01)
    return samples


def requests_of(samples: Samples, route: str, status: str, method: str = "GET") -> float:
    return value(
        samples,
        REQUESTS,
        http_request_method=method,
        http_route=route,
        http_response_status_code=status,
    )


async def test_requests_are_counted_per_route_template_and_status(
    metered: tuple[Webapp, int],
) -> None:
    webapp, port = metered
    async with webapp.client(timeout=10.0) as http:
        created = await http.post("/api/v1/users", json={"username": "metrics-ada"})
        assert created.status_code == 201
        user_id = created.json()["id"]
        found = await asyncio.gather(*(http.get(f"/api/v1/users/{user_id}") for _ in range(5)))
        missing = [await http.get(f"/api/v1/users/{n}") for n in range(10**9, 10**9 + 7)]
        assert (await http.get("/no/such/page/42")).status_code == 404
        assert (await http.get("/readyz")).status_code == 200
    assert [r.status_code for r in found] == [200] * 5
    assert [r.status_code for r in missing] == [404] * 7

    samples = settled(port, 1 + 5 + 7 + 1 + 1)
    assert requests_of(samples, "/api/v1/users", "201", "POST") == 1
    assert requests_of(samples, USER_ROUTE, "200") == 5
    assert requests_of(samples, USER_ROUTE, "404") == 7
    assert requests_of(samples, "unmatched", "404") == 1
    assert requests_of(samples, "/readyz", "200") == 1
    routes = {dict(labels)["http_route"] for (name, labels) in samples if name == REQUESTS}
    assert routes == {"/api/v1/users", USER_ROUTE, "unmatched", "/readyz"}, "a raw path label"
    # 12 reads by id, coalesced into at most 12 BatchGetUsers calls that carried all of them.
    batches = value(samples, "userstack_webapp_read_batch_size_count")
    assert value(samples, "userstack_webapp_read_batch_size_sum") == 12
    method = "users.v1.UserService/BatchGetUsers"
    assert value(samples, CLIENT_CALLS, grpc_method=method, grpc_status="OK") == batches
    create = "users.v1.UserService/CreateUser"
    assert value(samples, CLIENT_CALLS, grpc_method=create, grpc_status="OK") == 1
    check = "grpc.health.v1.Health/Check"  # /readyz's, and the ready gauge's own every 5 s
    assert value(samples, CLIENT_CALLS, grpc_method=check, grpc_status="OK") >= 1
    assert value(samples, "userstack_webapp_ready") == 1


async def test_open_event_streams_are_counted(metered: tuple[Webapp, int]) -> None:
    webapp, port = metered
    assert value(scrape(port), "userstack_webapp_sse_subscribers") == 0
    async with (
        webapp.client(timeout=10.0) as http,
        http.stream("GET", "/api/v1/users/events") as events,
    ):
        lines = events.aiter_lines()
        assert (await anext(lines)).startswith(":")  # the opening comment: subscribed
        assert value(scrape(port), "userstack_webapp_sse_subscribers") == 1
    for _ in range(200):  # bounded: the webapp sees the disconnect on its next read
        if value(scrape(port), "userstack_webapp_sse_subscribers") == 0:
            break
        await asyncio.sleep(0.025)
    assert value(scrape(port), "userstack_webapp_sse_subscribers") == 0


def test_metrics_are_not_served_on_the_application_port(metered: tuple[Webapp, int]) -> None:
    webapp, port = metered
    assert httpx.get(f"{webapp.url}/metrics").status_code == 404
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def test_no_metrics_port_unless_configured(users: UsersService, webapp: Any) -> None:
    assert httpx.get(f"{webapp.url}/metrics").status_code == 404
    assert "WEBAPP_METRICS_LISTEN_ADDRESS" not in webapp.env


def test_the_ready_gauge_follows_the_users_service_without_readyz_requests(
    metered: tuple[Webapp, int],
) -> None:
    _, port = metered
    for _ in range(200):  # bounded: the webapp checks at start, then every 5 s
        if value(scrape(port), "userstack_webapp_ready") == 1:
            break
        time.sleep(0.05)
    samples = scrape(port)
    assert value(samples, "userstack_webapp_ready") == 1
    assert requests_of(samples, "/readyz", "200") == 0  # nobody asked
