"""The observability variant (compose.observability.yaml over the scaled one): Prometheus scrapes
every users replica and the webapp, and reports the traffic this test makes, by method."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.stack import Stack

REPLICAS = 3  # compose.scale.yaml's
WARM_UP, CREATES = 3, 12
WAIT_SECONDS = 90  # scrapes and DNS refreshes every 5 s
CREATE_METHOD = "users.v1.UserService/CreateUser"
CREATED = (
    "sum by (grpc_method) (grpc_server_call_duration_seconds_count"
    f'{{grpc_method="{CREATE_METHOD}", grpc_status="OK"}})'
)
RATE = "sum by (grpc_method) (rate(grpc_server_call_duration_seconds_count[1m]))"


def query(prometheus: str, promql: str) -> dict[str, float]:
    """The query's instant vector, by grpc_method."""
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    reply.raise_for_status()
    result: list[dict[str, Any]] = reply.json()["data"]["result"]
    return {r["metric"].get("grpc_method", ""): float(r["value"][1]) for r in result}


def target_health(prometheus: str) -> dict[str, list[str]]:
    """Each job's targets' health ("up", "down", "unknown")."""
    reply = httpx.get(f"{prometheus}/api/v1/targets", timeout=10)
    reply.raise_for_status()
    jobs: dict[str, list[str]] = {}
    for target in reply.json()["data"]["activeTargets"]:
        jobs.setdefault(target["labels"]["job"], []).append(target["health"])
    return jobs


def eventually(check: Callable[[], bool]) -> None:
    """Waits (bounded) for `check` to hold; the caller asserts what it saw."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check() and time.monotonic() < deadline:
        time.sleep(1)


def create(http: httpx.Client, count: int) -> None:
    for _ in range(count):
        reply = http.post("/api/v1/users", json={"username": f"o{uuid.uuid4().hex[:12]}"})
        assert reply.status_code == 201, reply.text


def test_prometheus_scrapes_every_replica_and_reports_the_traffic_by_method(
    observed_stack: tuple[Stack, int],
) -> None:
    stack, port = observed_stack
    prometheus = f"http://127.0.0.1:{port}"
    expected = {"users": ["up"] * REPLICAS, "webapp": ["up"], "prometheus": ["up"]}
    eventually(lambda: target_health(prometheus) == expected)
    assert target_health(prometheus) == expected

    with httpx.Client(base_url=stack.http_url, timeout=10, headers=stack.admin_headers) as http:
        # The webapp's channel connects to the replicas as it starts: calls wait until it has.
        eventually(lambda: http.get("/readyz").status_code == 200)
        # A first few, so that the series exist before the counted traffic (a rate needs
        # two samples of a series: a series' first one shows no increase).
        create(http, WARM_UP)
        eventually(lambda: query(prometheus, CREATED) == {CREATE_METHOD: WARM_UP})
        assert query(prometheus, CREATED) == {CREATE_METHOD: WARM_UP}
        create(http, CREATES)

    def counted() -> bool:
        total = query(prometheus, CREATED) == {CREATE_METHOD: WARM_UP + CREATES}
        return total and query(prometheus, RATE).get(CREATE_METHOD, 0) > 0

    eventually(counted)
    assert query(prometheus, CREATED) == {CREATE_METHOD: WARM_UP + CREATES}
    rates = query(prometheus, RATE)
    assert rates.get(CREATE_METHOD, 0) > 0, rates
    # The rules are loaded.
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {group["name"] for group in groups} == {"userstack-red", "userstack-alerts"}
