"""The webapp's metrics and spans: HTTP RED per route template, the users channel's calls.

Per request (middleware.py): http_server_request_duration_seconds by method, route template and
status, and with tracing on a server span continuing the caller's `traceparent`. Per gRPC call
(gateway/instrument.py): grpc_client_call_duration_seconds by method and code, a client span.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from plumbing.metrics import (
    DURATION_BUCKETS,
    CallMetrics,
    CollectorRegistry,
    Gauge,
    HistogramSeries,
    LoopHistogram,
    new_registry,
)
from plumbing.tracing import (
    TRACEPARENT,
    TRACESTATE,
    Span,
    SpanKind,
    Tracer,
    dropped_early,
    parent_from,
)
from starlette.types import Scope

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
READ_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 100)


class WebappMetrics:
    """The webapp's metrics, in a registry of their own (served on the metrics port)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = new_registry() if registry is None else registry
        self._requests = LoopHistogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP requests (OpenTelemetry http.server.request.duration), by route "
            "template; an event stream counts when it ends.",
            ["http_request_method", "http_route", "http_response_status_code"],
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self._children: dict[tuple[str, str, int], HistogramSeries] = {}
        self.calls = CallMetrics(self.registry, "client")
        self.read_batch = LoopHistogram(
            "userstack_webapp_read_batch_size",
            "Reads by id per coalesced BatchGetUsers call.",
            registry=self.registry,
            buckets=READ_BATCH_BUCKETS,
        )
        self.sse_subscribers = Gauge(
            "userstack_webapp_sse_subscribers",
            "Open server-sent event streams (GET /api/v1/users/events).",
            registry=self.registry,
        )

    def watch_readiness(self, ready: Callable[[], bool]) -> None:
        """userstack_webapp_ready: the last /readyz answer, read when scraped."""
        Gauge(
            "userstack_webapp_ready",
            "1 when the last readiness check (GET /readyz) found the users service SERVING.",
            registry=self.registry,
        ).set_function(lambda: float(ready()))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Records one HTTP request."""
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            label = method if method in _METHODS else "_OTHER"
            child = self._children[key] = self._requests.labels(label, route, str(status))
        child.observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (/api/v1/users/{user_id}), never the
    raw path: the label set stays bounded. "unmatched" when no route matched (a 404)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestSpans:
    """Starts each request's server span, child of its `traceparent` header if any.

    A request the sampler drops is decided before anything is built, as the users service
    decides a call (`plumbing.tracing.dropped_early`: always_off, always_on, a ratio, and
    parent-based samplers over them, decided on the trace id the span would have): no span is
    made, the request gets ids (the trace id the caller's, if it sent one) for its log lines,
    and its gRPC calls carry them on (`gateway/instrument.py`: `dropped_traceparent`). That
    skips the SDK, the span objects and the OpenTelemetry context (docs/performance.md). The
    rest, and any other sampler, go through the SDK.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def start(self, scope: Scope) -> Span | str:
        """The request's span, made current (attributes only on a span that records); for a
        request the sampler drops, the log fields of the ids it was given instead."""
        traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"traceparent":  # the last one wins, as in the propagator's carrier
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        parent = () if traceparent is None else ((TRACEPARENT, traceparent.decode("latin-1")),)
        dropped = dropped_early(self.tracer, parent)
        if dropped is not None:
            return dropped
        return self._recorded(scope, traceparent, tracestate)

    def _recorded(self, scope: Scope, traceparent: bytes | None, tracestate: bytes | None) -> Span:
        carrier = [
            (name, value.decode("latin-1"))
            for name, value in ((TRACEPARENT, traceparent), (TRACESTATE, tracestate))
            if value is not None
        ]
        kind = SpanKind.SERVER
        span = self.tracer.start_span(scope["method"], context=parent_from(carrier), kind=kind)
        if span.is_recording():
            span.set_attributes({"http.request.method": scope["method"], "url.path": scope["path"]})
        otel_context.attach(trace.set_span_in_context(span))
        return span


def end_request_span(span: Span, scope: Scope, route: str, status: int) -> None:
    """Names the span after its route template and ends it with the response status."""
    if not span.is_recording():
        span.end()
        return
    span.update_name(f"{scope['method']} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500 or status == 0:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    span.end()
