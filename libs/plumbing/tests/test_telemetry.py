"""plumbing.metrics and plumbing.tracing: the metrics port, connection counts, tracing's switch,
traceparent in and out, the log fields."""

from __future__ import annotations

import socket
import urllib.request

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from plumbing.metrics import CallMetrics, established_connections, new_registry, serve
from plumbing.tracing import configure, log_fields, parent_from, traceparent_of

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_tracing_is_off_without_an_endpoint_or_when_disabled() -> None:
    assert configure("svc", {}) is None
    assert configure("svc", {"OTEL_TRACES_SAMPLER": "always_on"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert configure("svc", {**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    tracing = configure("svc", endpoint)
    assert tracing is not None
    tracing.shutdown()


def test_a_traceparent_comes_in_and_goes_out_unchanged() -> None:
    parent = parent_from([("x-request-id", "r"), ("traceparent", TRACEPARENT)])
    assert parent is not None
    span = trace.get_current_span(parent)
    assert traceparent_of(span) == ("traceparent", TRACEPARENT)
    assert log_fields(span) == (
        ', "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"'
    )


def test_no_or_a_malformed_traceparent_gives_no_parent() -> None:
    assert parent_from([("x-request-id", "r")]) is None
    parent = parent_from([("traceparent", "00-zz-00f067aa0ba902b7-01")])
    assert parent is not None
    assert not trace.get_current_span(parent).get_span_context().is_valid
    invalid = NonRecordingSpan(SpanContext(0, 0, False, TraceFlags(0)))
    assert traceparent_of(invalid) is None
    assert log_fields(invalid) == ""


def test_the_metrics_port_serves_the_registry_and_counts_its_connections() -> None:
    registry = new_registry()
    calls = CallMetrics(registry, "server")
    calls.started("/pkg.Svc/M")
    calls.ended("/pkg.Svc/M", "OK", 0.001)
    endpoint = serve("127.0.0.1:0", registry)
    try:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            page = reply.read().decode()
        assert 'grpc_server_call_started_total{grpc_method="pkg.Svc/M"} 1.0' in page
        assert "process_resident_memory_bytes" in page
        before = established_connections(endpoint.port)
        with socket.create_connection(("127.0.0.1", endpoint.port)):
            # Both ends of a loopback connection are in this namespace: the server's counts.
            assert established_connections(endpoint.port) == before + 1
    finally:
        endpoint.close()
