"""plumbing.metrics and plumbing.tracing: the metrics port, connection counts, tracing's switch,
traceparent in and out, the log fields."""

from __future__ import annotations

import contextvars
import json
import socket
import urllib.request
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from plumbing.metrics import CallMetrics, established_connections, new_registry, serve
from plumbing.tracing import (
    configure,
    current_ids,
    dropped_early,
    log_fields,
    parent_from,
    traceparent_of,
)

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


SAMPLERS = (
    ("always_off", ""),
    ("always_on", ""),
    ("parentbased_always_on", ""),
    ("parentbased_always_off", ""),
    ("traceidratio", "0.25"),
    ("parentbased_traceidratio", "0.25"),
)


@pytest.mark.parametrize(("sampler", "ratio"), SAMPLERS)
def test_a_call_dropped_early_is_one_the_sdk_would_drop(
    sampler: str, ratio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dropped_early decides as the configured sampler does: what it drops the SDK would not
    record; what it hands on, the SDK records exactly when its sampler says so; and a ratio
    sampler's share of sampled roots stays the ratio (the root keeps the id decided on)."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    tracing = configure("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing is not None
    tracer: Any = tracing.tracer
    kept = 0
    try:
        for index in range(4000):
            parent = f"00-{index + 1:032x}-00f067aa0ba902b7-0{index % 2}"
            pairs = [] if index % 3 == 0 else [("traceparent", parent)]
            run = contextvars.copy_context().run
            fields = run(dropped_early, tracer, pairs)
            if fields is not None:
                # Dropped: the SDK, given the same parent (or a root), would not record.
                trace_id = json.loads("{" + fields[2:] + "}")["trace_id"]
                if pairs:
                    assert trace_id == f"{index + 1:032x}"
                    assert not tracer.start_span("m", context=parent_from(pairs)).is_recording()
                else:
                    verdict = tracer.sampler.should_sample(None, int(trace_id, 16), "m")
                    assert not verdict.decision.is_recording()
                continue
            span = tracer.start_span("m", context=parent_from(pairs))
            verdict = tracer.sampler.should_sample(
                parent_from(pairs), span.get_span_context().trace_id, "m"
            )
            assert span.is_recording() == verdict.decision.is_recording()
            kept += not pairs and span.is_recording()
    finally:
        tracing.shutdown()  # the recorded spans were never ended: nothing is exported
    roots = len(range(0, 4000, 3))
    expected = {"always_off": 0.0, "always_on": 1.0, "parentbased_always_on": 1.0,
                "parentbased_always_off": 0.0}.get(sampler, 0.25)  # fmt: skip
    # 1,334 roots: a share of 0.25 has a standard deviation of 0.012; 0.0625 (a second,
    # independent draw by the SDK) or 0.25 +- 0.06 would fail.
    assert abs(kept / roots - expected) < 0.06, (kept, roots)


def test_the_ids_of_a_dropped_call_are_in_its_other_log_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    tracing = configure("svc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing is not None
    try:
        unsampled = [("traceparent", TRACEPARENT[:-2] + "00")]

        def call() -> tuple[str | None, tuple[str, str] | None]:
            return dropped_early(tracing.tracer, unsampled), current_ids()

        fields, ids = contextvars.copy_context().run(call)
        assert fields is not None
        assert ids is not None
        assert ids[0] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert fields == f', "trace_id": "{ids[0]}", "span_id": "{ids[1]}"'
        assert current_ids() is None  # the call's context only
        # A sampled caller and a malformed traceparent are the SDK's to start.
        assert dropped_early(tracing.tracer, [("traceparent", TRACEPARENT)]) is None
        assert dropped_early(tracing.tracer, [("traceparent", "00-zz-00-01")]) is None
    finally:
        tracing.shutdown()
