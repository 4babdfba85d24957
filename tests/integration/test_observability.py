"""The observability variant (compose.observability.yaml over the scaled one): Prometheus scrapes
every users replica and the webapp, and reports the traffic this test makes, by method."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.integration.stack import Stack

REPLICAS = 3  # compose.scale.yaml's
CREATES = 12
SCRAPE_WAIT_SECONDS = 60  # scrape and DNS refresh intervals are 5 s


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    reply.raise_for_status()
    result: list[dict[str, Any]] = reply.json()["data"]["result"]
    return result


def targets(prometheus: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus}/api/v1/targets", timeout=10)
    reply.raise_for_status()
    active: list[dict[str, Any]] = reply.json()["data"]["activeTargets"]
    return active


def test_prometheus_scrapes_every_replica_and_reports_the_traffic_by_method(
    observed_stack: tuple[Stack, int],
) -> None:
    stack, port = observed_stack
    prometheus = f"http://127.0.0.1:{port}"
    prefix = f"o{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.http_url, timeout=10) as http:
        # The webapp's channel connects to the replicas as it starts: calls wait until it has.
        ready = time.monotonic() + SCRAPE_WAIT_SECONDS
        while http.get("/readyz").status_code != 200 and time.monotonic() < ready:
            time.sleep(0.5)
        for n in range(CREATES):
            reply = http.post("/api/v1/users", json={"username": f"{prefix}-{n}"})
            assert reply.status_code == 201, reply.text

    deadline = time.monotonic() + SCRAPE_WAIT_SECONDS
    total = -1.0
    jobs: dict[str, list[str]] = {}
    promql = (
        "sum by (grpc_method) "
        '(grpc_server_call_duration_seconds_count{grpc_method="users.v1.UserService/CreateUser"})'
    )
    while time.monotonic() < deadline:
        active = targets(prometheus)
        jobs = {}
        for target in active:
            jobs.setdefault(target["labels"]["job"], []).append(target["health"])
        result = query(prometheus, promql)
        total = float(result[0]["value"][1]) if result else -1.0
        all_up = len(jobs.get("users", [])) == REPLICAS and all(
            health == "up" for healths in jobs.values() for health in healths
        )
        if all_up and total == CREATES:
            break
        time.sleep(1)
    assert jobs.get("users") == ["up"] * REPLICAS, jobs
    assert jobs.get("webapp") == ["up"], jobs
    assert all(health == "up" for healths in jobs.values() for health in healths), jobs
    assert total == CREATES
    # The request rate by method, as a dashboard asks for it: CreateUser's is not zero.
    rates = query(
        prometheus,
        "sum by (grpc_method) (rate(grpc_server_call_duration_seconds_count[5m]))",
    )
    by_method = {r["metric"]["grpc_method"]: float(r["value"][1]) for r in rates}
    assert by_method.get("users.v1.UserService/CreateUser", 0) > 0, by_method
    # The rules are loaded: the recording rule's series exists for the method.
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {group["name"] for group in rules} == {"userstack-red", "userstack-alerts"}
