"""Request spans: a request the sampler drops whatever it is makes no span but keeps its ids."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from plumbing.tracing import configure, current_ids, dropped_traceparent
from webapp.telemetry import RequestSpans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


def scope(traceparent: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"localhost")]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent.encode()))
    return {"type": "http", "method": "GET", "path": "/api/v1/users/1", "headers": headers}


def started(sampler: Sampler, traceparent: str | None = None) -> tuple[trace.Span | str, Any]:
    """What RequestSpans.start returns in a request's context, and that context's
    (current span, current_ids(), dropped_traceparent()) after it."""
    spans = RequestSpans(TracerProvider(sampler=sampler).get_tracer("test"))
    request = contextvars.Context()  # as a request's task starts: no span current
    span = request.run(spans.start, scope(traceparent))
    seen = request.run(lambda: (trace.get_current_span(), current_ids(), dropped_traceparent()))
    return span, seen


@pytest.mark.parametrize(
    ("sampler", "traceparent"),
    [
        (ALWAYS_OFF, None),
        (ALWAYS_OFF, f"00-{TRACE_ID}-{CALLER}-01"),
        (ParentBased(ALWAYS_OFF), None),
        (ParentBased(ALWAYS_ON), f"00-{TRACE_ID}-{CALLER}-00"),
        (TraceIdRatioBased(0.0), None),
    ],
)
def test_a_dropped_request_has_fresh_unsampled_ids_in_its_callers_trace(
    sampler: Sampler, traceparent: str | None
) -> None:
    fields, (current, ids, entry) = started(sampler, traceparent)
    assert not current.get_span_context().is_valid  # no span, no OpenTelemetry context
    assert ids is not None
    trace_id, span_id = ids
    assert fields == f', "trace_id": "{trace_id}", "span_id": "{span_id}"'  # the access line's
    assert int(trace_id, 16)
    assert int(span_id, 16)
    assert span_id != CALLER
    assert entry == ("traceparent", f"00-{trace_id}-{span_id}-00")  # what its calls carry on
    if traceparent is not None:
        assert trace_id == TRACE_ID


def test_each_dropped_request_has_ids_of_its_own() -> None:
    first, _ = started(ALWAYS_OFF)
    second, _ = started(ALWAYS_OFF)
    assert first != second


@pytest.mark.parametrize(
    ("sampler", "traceparent", "recording"),
    [
        (ParentBased(ALWAYS_ON), None, True),
        (ParentBased(ALWAYS_ON), f"00-{TRACE_ID}-{CALLER}-01", True),
        (ParentBased(ALWAYS_OFF), f"00-{TRACE_ID}-{CALLER}-01", True),
        # Not version 00, or an all-zero id: the SDK's propagator decides what it means.
        (ALWAYS_OFF, f"01-{TRACE_ID}-{CALLER}-00-future", False),
        (ALWAYS_OFF, f"00-{'0' * 32}-{CALLER}-00", False),
    ],
)
def test_any_other_request_is_decided_by_the_sdk(
    sampler: Sampler, traceparent: str | None, recording: bool
) -> None:
    span, (current, _, entry) = started(sampler, traceparent)
    assert isinstance(span, trace.Span)
    assert current is span  # made current
    assert entry is None
    assert span.is_recording() is recording
    if recording and traceparent is not None:
        assert format(span.get_span_context().trace_id, "032x") == TRACE_ID


def test_a_ratio_sampler_drops_some_requests_before_the_sdk_and_records_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production's sampler (parentbased_traceidratio), as plumbing.tracing.configure sets it
    up: decided on the trace id the request would have (dropped_early), so that the dropped
    share skips the SDK and every request sent to the SDK is recorded."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    tracing = configure("webapp", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing is not None
    spans = RequestSpans(tracing.tracer)
    try:
        outcomes = [contextvars.Context().run(spans.start, scope()) for _ in range(200)]
    finally:
        tracing.provider.shutdown()  # nothing was ended: nothing to export
    recorded = [span for span in outcomes if not isinstance(span, str)]
    assert 0 < len(recorded) < len(outcomes)
    assert all(span.is_recording() for span in recorded)
