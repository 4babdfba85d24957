"""What the service records beyond its log lines: Prometheus metrics and OpenTelemetry spans.

Per call (calls.py): gRPC's A66 call metrics and, when tracing is on, a server span continuing
the caller's `traceparent`. Per store operation (TracedStore): its latency and a child span.
The rest (change-feed subscribers, connections, draining, serving) is read when scraped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from plumbing.metrics import (
    DURATION_BUCKETS,
    CallMetrics,
    CollectorRegistry,
    Gauge,
    LoopHistogram,
    established_connections,
    new_registry,
)
from plumbing.tracing import Span, SpanKind, Tracer, parent_from

COMMIT_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """The users service's metrics, in a registry of their own (served on the metrics port).

    Example:
        >>> metrics = ServerMetrics()
        >>> metrics.watch(feed=server.feed, serving=..., draining=..., port=50051)  # doctest: +SKIP
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = new_registry() if registry is None else registry
        self.calls = CallMetrics(self.registry, "server")
        self.store_duration = LoopHistogram(
            "db_client_operation_duration_seconds",
            "Duration of one store operation (OpenTelemetry db.client.operation.duration); "
            "create_users includes the wait for its shared commit.",
            ["db_system_name", "db_operation_name"],
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.commit_batch = LoopHistogram(
            "userstack_store_commit_batch_size",
            "Users created per shared transaction (group commit: one fsync each).",
            registry=self.registry,
            buckets=COMMIT_BATCH_BUCKETS,
        )

    def watch(
        self,
        *,
        subscribers: Callable[[], int],
        serving: Callable[[], bool],
        draining: Callable[[], bool],
        port: Callable[[], int | None],
    ) -> None:
        """Gauges read at scrape time, so that no call pays for them."""
        gauges = (
            ("userstack_users_watch_subscribers", "Open WatchUsers streams.", subscribers),
            ("userstack_users_serving", "1 while users.v1.UserService reports SERVING.", serving),
            ("userstack_users_draining", "1 once the server has begun to drain.", draining),
            (
                "userstack_users_connections",
                "TCP connections established to the API port.",
                lambda: established_connections(port() or 0) if port() else 0,
            ),
        )
        for name, help_text, read in gauges:
            Gauge(name, help_text, registry=self.registry).set_function(
                lambda read=read: float(read())  # type: ignore[misc]
            )


def server_span(tracer: Tracer, method: str, metadata: Sequence[tuple[str, Any]] | None) -> Span:
    """A server span for the call `method`, child of the caller's traceparent if it sent one,
    made current for the rest of the call (the call's own task: nothing leaks to others).

    Attributes are set only on a span that records: building them for a dropped one costs a
    third of the span (the samplers the OTEL_* variables name do not read them)."""
    span = tracer.start_span(method[1:], context=parent_from(metadata or ()), kind=SpanKind.SERVER)
    if span.is_recording():
        service, _, name = method[1:].rpartition("/")
        span.set_attributes({"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
    otel_context.attach(trace.set_span_in_context(span))
    return span


_STORE_OPERATIONS = (
    "create_users",
    "get_user",
    "get_user_by_username",
    "get_users",
    "update_user",
    "delete_user",
    "list_users",
    "export_page",
)


class TracedStore:
    """A UserStore whose call-path operations are timed (`metrics`) and, with a `tracer`, each
    a child span of the call's; open, close and probe go straight through.

    Example:
        >>> store = TracedStore(build_store(url), "sqlite", metrics, tracer)  # doctest: +SKIP
    """

    def __init__(
        self, store: Any, system: str, metrics: ServerMetrics | None, tracer: Tracer | None
    ) -> None:
        self._store = store
        for operation in _STORE_OPERATIONS:
            method = getattr(store, operation)
            if metrics is not None or tracer is not None:
                method = _instrumented(operation, method, system, metrics, tracer)
            setattr(self, operation, method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _instrumented(
    operation: str,
    method: Callable[..., Awaitable[Any]],
    system: str,
    metrics: ServerMetrics | None,
    tracer: Tracer | None,
) -> Callable[..., Awaitable[Any]]:
    observe = None if metrics is None else metrics.store_duration.labels(system, operation).observe
    if observe is not None and tracer is None:
        return _timed(method, observe)
    attributes = {"db.system.name": system, "db.operation.name": operation}

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        try:
            # Under a call that is not sampled the child would not be either: no span at all.
            if tracer is None or not trace.get_current_span().is_recording():
                return await method(*args, **kwargs)
            with tracer.start_as_current_span(
                f"store {operation}",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                # NotFound and StaleEtag are answers, not store failures.
                record_exception=False,
                set_status_on_exception=False,
            ):
                return await method(*args, **kwargs)
        finally:
            if observe is not None:
                observe(perf_counter() - started)

    if observe is not None:
        return timed

    def traced(*args: Any, **kwargs: Any) -> Awaitable[Any]:
        # Tracing alone: under a call nobody records (most, when sampling), the store's own
        # coroutine is the answer, with no timing and no coroutine wrapped around it.
        if not trace.get_current_span().is_recording():
            return method(*args, **kwargs)
        return timed(*args, **kwargs)

    return traced


def _timed(
    method: Callable[..., Awaitable[Any]], observe: Callable[[float], None]
) -> Callable[..., Awaitable[Any]]:
    """Metrics alone: the operation timed around its await, nothing else per call. The await
    resumes on the event loop's thread, where the histogram is recorded (loop_metrics.py)."""

    async def timed(*args: Any) -> Any:
        started = perf_counter()
        try:
            return await method(*args)
        finally:
            observe(perf_counter() - started)

    return timed
