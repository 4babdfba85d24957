"""Prometheus metrics: a registry per process, its own HTTP port, and gRPC's call metrics (A66).

The services record into a registry of their own (not prometheus_client's global one, so that
tests can run several servers in one process) and serve it on a port that is not the
application's. Per-call counters and histograms are kept in plain numbers on the event loop's
thread and built into families when scraped (loop_metrics.py: prometheus-client's own take a lock
per value); each label set's series is looked up once and kept (scripts/bench/metrics_cost.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from time import perf_counter
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from plumbing.loop_metrics import CounterSeries, HistogramSeries, LoopCounter, LoopHistogram

__all__ = [
    "DURATION_BUCKETS",
    "CallMetrics",
    "CollectorRegistry",
    "Gauge",
    "HistogramSeries",
    "LoopCounter",
    "LoopHistogram",
    "MetricsEndpoint",
    "established_connections",
    "new_registry",
    "serve",
]

# Seconds, from 100 us (a cached read) to 10 s (the longest unary deadline); fewer buckets than
# A66's list: each is a series per method and code.
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Sizes in bytes, 64 B to the default 4 MiB message limit.
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


def new_registry() -> CollectorRegistry:
    """An empty registry with the process's own metrics: process_* (CPU seconds, resident
    memory, open file descriptors, start time), python_gc_* and python_info."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


@dataclass
class MetricsEndpoint:
    """The HTTP server that answers GET /metrics (any path) from a thread of its own."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stops answering and releases the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(address: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serves `registry` in the Prometheus text format on `address` (host:port, a bracketed
    IPv6 host allowed); OSError if the port cannot be bound."""
    host, _, port = address.rpartition(":")
    server, thread = start_http_server(int(port), host.strip("[]"), registry)
    return MetricsEndpoint(server, thread)


class CallMetrics:
    """gRPC call metrics after grpc.io's proposal A66, in Prometheus form (dots to underscores,
    the unit as a suffix): `grpc_{side}_call_duration_seconds{grpc_method, grpc_status}`, and
    on the server side (started/ended) `grpc_server_call_started_total{grpc_method}` and the
    calls in flight; a client side records with observe() alone.

    Methods are a service's registered ones and codes gRPC's 17, so the label sets are bounded.

    Example:
        >>> calls = CallMetrics(new_registry(), "server")
        >>> started = calls.started("/users.v1.UserService/GetUser")
        >>> calls.ended("/users.v1.UserService/GetUser", "OK", perf_counter() - started)
    """

    def __init__(self, registry: CollectorRegistry, side: str) -> None:
        self._duration = LoopHistogram(
            f"grpc_{side}_call_duration_seconds",
            f"Time from the start of a call to its end as the {side} sees it (A66 "
            f"grpc.{side}.call.duration).",
            ["grpc_method", "grpc_status"],
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self._ended: dict[tuple[str, str], HistogramSeries] = {}
        self._starting: dict[str, CounterSeries] = {}
        if side != "server":
            return  # a client records each call as it ends (observe) only
        self._started = LoopCounter(
            f"grpc_{side}_call_started",
            f"Calls started, by method (A66 grpc.{side}.call.started).",
            ["grpc_method"],
            registry=registry,
        )
        # A plain count, read when scraped. started() and ended() run on the event loop's
        # thread only (the server's calls), as everything recorded in plain numbers must.
        self._in_flight = 0
        Gauge(
            f"grpc_{side}_calls_in_flight",
            "Calls started and not yet ended.",
            registry=registry,
        ).set_function(lambda: self._in_flight)

    def started(self, method: str) -> float:
        """Counts a call of `method` (its path, /package.Service/Method) as started; returns
        the time to pass to finished(). On the event loop's thread only (as ended())."""
        series = self._starting.get(method)
        if series is None:
            series = self._starting[method] = self._started.labels(method.lstrip("/"))
        series.value += 1
        self._in_flight += 1
        return perf_counter()

    def ended(self, method: str, code: str, seconds: float) -> None:
        """Counts the call as ended with `code` (a grpc.StatusCode name) after `seconds`."""
        self._in_flight -= 1
        series = self._ended.get((method, code))
        if series is None:
            series = self._ending(method, code)
        series.observe(seconds)

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Records one call's duration without the started/in-flight bookkeeping."""
        series = self._ended.get((method, code))
        if series is None:
            series = self._ending(method, code)
        series.observe(seconds)

    def _ending(self, method: str, code: str) -> HistogramSeries:
        series = self._ended[method, code] = self._duration.labels(method.lstrip("/"), code)
        return series


_ESTABLISHED = "01"  # the st column of /proc/net/tcp
_PROC_NET = (Path("/proc/self/net/tcp"), Path("/proc/self/net/tcp6"))


def established_connections(port: int) -> int:
    """TCP connections ESTABLISHED to local `port` in this process's network namespace (in a
    container: its own), read from /proc at scrape time, so calls pay nothing; 0 off Linux."""
    wanted = f":{port:04X}"
    count = 0
    for table in _PROC_NET:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            count += fields[1].endswith(wanted) and fields[3] == _ESTABLISHED
    return count
