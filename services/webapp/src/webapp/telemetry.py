"""The webapp's metrics and spans: HTTP RED per route template, the users channel's calls.

Per request (middleware.py): http_server_request_duration_seconds by method, route template and
status, and with tracing on a server span continuing the caller's `traceparent`. Per gRPC call
(gateway/instrument.py): grpc_client_call_duration_seconds by method and code, a client span.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
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
    always_drops,
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

    When the sampler is one that drops such a request whatever it is (`always_drops`:
    always_off, a ratio of 0, or a parent-based sampler whose delegate for this kind of parent is
    one of those), the SDK is skipped: the span is a non-recording one made from fresh ids (the
    trace id the caller's, if it sent one), so the trace id still reaches the users service and
    the log lines, at a fraction of start_span's cost (docs/performance.md). Any other sampler
    decides through the SDK.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        sampler = getattr(tracer, "sampler", None)
        # Whether the sampler drops a request with no parent, an unsampled or a sampled one.
        self._drops = {parent: always_drops(sampler, parent) for parent in (None, False, True)}
        self._ids: IdGenerator = getattr(tracer, "id_generator", None) or RandomIdGenerator()

    def start(self, scope: Scope) -> Span:
        """The request's span, made current (attributes only on a span that records)."""
        traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"traceparent":  # the last one wins, as in the propagator's carrier
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        parent = None if traceparent is None else _TRACEPARENT.fullmatch(traceparent)
        if traceparent is None or parent is not None:
            trace_id = 0 if parent is None else int(parent[1], 16)
            sampled = None if parent is None else bool(int(parent[3], 16) & 1)
            if self._drops[sampled] and (parent is None or (trace_id and int(parent[2], 16))):
                span = self._unsampled(trace_id)
                otel_context.attach(trace.set_span_in_context(span))
                return span
        return self._recorded(scope, traceparent, tracestate)

    def _unsampled(self, trace_id: int) -> Span:
        context = SpanContext(
            trace_id or self._ids.generate_trace_id(),
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=_UNSAMPLED,
        )
        return NonRecordingSpan(context)

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


# A W3C traceparent of version 00 (any other form is left to the SDK's propagator).
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


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
