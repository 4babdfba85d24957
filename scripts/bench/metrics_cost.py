"""Per-call cost of recording one RPC's metrics: prometheus-client against the OpenTelemetry SDK.

What the users service records per call: a duration histogram and a started counter, labelled
by method and status code; prometheus-client's own against the plain numbers the services keep
(plumbing.loop_metrics). Run: `uv run --with opentelemetry-exporter-prometheus python -m
scripts.bench.metrics_cost` (the OpenTelemetry exporter is needed only for its scrape check).
"""

from __future__ import annotations

import time
from collections.abc import Callable

N = 200_000
METHOD = "users.v1.UserService/GetUser"
# prometheus-client's default buckets, which its rows use.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _per_call(record: Callable[[], None]) -> float:
    """Microseconds per call of `record`, best of 5 runs of N calls."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(N):
            record()
        best = min(best, time.perf_counter() - started)
    return best / N * 1e6


def prometheus_client_children() -> Callable[[], None]:
    from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415

    registry = CollectorRegistry()
    started = Counter("started", "", ["method"], registry=registry)
    duration = Histogram("duration", "", ["method", "code"], registry=registry)
    # The children resolved once per (method, code) and kept: what the service does.
    started_child = started.labels(METHOD)
    duration_child = duration.labels(METHOD, "OK")

    def record() -> None:
        started_child.inc()
        duration_child.observe(0.0004)

    return record


def prometheus_client_labels() -> Callable[[], None]:
    from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415

    registry = CollectorRegistry()
    started = Counter("started", "", ["method"], registry=registry)
    duration = Histogram("duration", "", ["method", "code"], registry=registry)

    def record() -> None:
        started.labels(METHOD).inc()
        duration.labels(METHOD, "OK").observe(0.0004)

    return record


def loop_metrics_children() -> Callable[[], None]:
    from plumbing.loop_metrics import LoopCounter, LoopHistogram  # noqa: PLC0415
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    registry = CollectorRegistry()
    started = LoopCounter("started", "", ["method"], registry=registry)
    duration = LoopHistogram("duration", "", ["method", "code"], buckets=BUCKETS, registry=registry)
    # Plain numbers on one thread, the families built when scraped: what the services do.
    started_child = started.labels(METHOD)
    duration_child = duration.labels(METHOD, "OK")

    def record() -> None:
        started_child.inc()
        duration_child.observe(0.0004)

    return record


def otel_sdk() -> Callable[[], None]:
    from opentelemetry.exporter.prometheus import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
        PrometheusMetricReader,
    )
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = provider.get_meter("bench")
    started = meter.create_counter("rpc.server.call.started")
    duration = meter.create_histogram("rpc.server.call.duration", unit="s")
    started_attrs = {"grpc.method": METHOD}
    duration_attrs = {"grpc.method": METHOD, "grpc.status": "OK"}

    def record() -> None:
        started.add(1, started_attrs)
        duration.record(0.0004, duration_attrs)

    return record


def main() -> None:
    for name, build in (
        ("prometheus-client, children kept", prometheus_client_children),
        ("prometheus-client, .labels() per call", prometheus_client_labels),
        ("plumbing.loop_metrics, children kept", loop_metrics_children),
        ("OpenTelemetry SDK + Prometheus exporter", otel_sdk),
    ):
        print(f"{name}: {_per_call(build()):.2f} us per call")


if __name__ == "__main__":
    main()
