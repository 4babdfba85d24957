"""Request spans: a request the sampler drops whatever it is skips the SDK but keeps its ids."""

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
from plumbing.tracing import traceparent_of
from webapp.telemetry import RequestSpans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


def scope(traceparent: str | None = None) -> dict[str, Any]:
    headers = [(b"host", b"localhost")]
    if traceparent is not None:
        headers.append((b"traceparent", traceparent.encode()))
    return {"type": "http", "method": "GET", "path": "/api/v1/users/1", "headers": headers}


def started(sampler: Sampler, traceparent: str | None = None) -> trace.Span:
    spans = RequestSpans(TracerProvider(sampler=sampler).get_tracer("test"))
    request = contextvars.Context()  # as a request's task starts: no span current
    span = request.run(spans.start, scope(traceparent))
    assert request.run(trace.get_current_span) is span  # made current either way
    return span


@pytest.mark.parametrize(
    ("sampler", "traceparent"),
    [
        (ALWAYS_OFF, None),
        (ALWAYS_OFF, f"00-{TRACE_ID}-{CALLER}-01"),
        (ParentBased(ALWAYS_OFF), None),
        (ParentBased(ALWAYS_ON), f"00-{TRACE_ID}-{CALLER}-00"),
    ],
)
def test_a_dropped_request_has_fresh_unsampled_ids_in_its_callers_trace(
    sampler: Sampler, traceparent: str | None
) -> None:
    span = started(sampler, traceparent)
    context = span.get_span_context()
    assert not span.is_recording()
    assert context.is_valid
    assert not context.trace_flags.sampled
    assert format(context.span_id, "016x") != CALLER
    entry = traceparent_of(span)
    assert entry is not None
    assert entry[1].endswith("-00")
    if traceparent is not None:
        assert format(context.trace_id, "032x") == TRACE_ID


@pytest.mark.parametrize(
    ("sampler", "traceparent", "recording"),
    [
        (ParentBased(ALWAYS_ON), None, True),
        (ParentBased(ALWAYS_ON), f"00-{TRACE_ID}-{CALLER}-01", True),
        (ParentBased(ALWAYS_OFF), f"00-{TRACE_ID}-{CALLER}-01", True),
        (TraceIdRatioBased(0.0), None, False),
        # Not version 00, or an all-zero id: the SDK's propagator decides what it means.
        (ALWAYS_OFF, f"01-{TRACE_ID}-{CALLER}-00-future", False),
        (ALWAYS_OFF, f"00-{'0' * 32}-{CALLER}-00", False),
    ],
)
def test_any_other_request_is_decided_by_the_sdk(
    sampler: Sampler, traceparent: str | None, recording: bool
) -> None:
    span = started(sampler, traceparent)
    assert span.is_recording() is recording
    if recording and traceparent is not None:
        assert format(span.get_span_context().trace_id, "032x") == TRACE_ID
