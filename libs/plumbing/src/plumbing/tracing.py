"""OpenTelemetry traces: set up from the standard OTEL_* variables, off unless an endpoint is set.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans go over
OTLP/gRPC to that collector, in batches from a thread of the SDK's (never on a call's path);
the sampler is the SDK's, from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default:
parentbased_always_on). Unset, `configure` returns None and the services skip every tracing step.
Trace context travels as W3C `traceparent`/`tracestate`, in HTTP headers and gRPC metadata alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACESTATE",
    "Span",
    "SpanKind",
    "Tracer",
    "Tracing",
    "configure",
    "end_rpc_span",
    "log_fields",
    "parent_from",
    "traceparent_of",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_propagator = TraceContextTextMapPropagator()
# The codes a server span marks as errors (OpenTelemetry's RPC conventions): the others are the
# client's doing (NOT_FOUND, INVALID_ARGUMENT...) and leave the server's span unset.
_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


@dataclass
class Tracing:
    """A configured tracer and the provider that exports its spans (shut it down at exit)."""

    tracer: Tracer
    provider: TracerProvider

    def shutdown(self) -> None:
        """Exports the spans still buffered, then stops the exporter."""
        self.provider.shutdown()


def configure(service_name: str, env: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing from the OTEL_* environment, or None when no OTLP endpoint is set (or
    OTEL_SDK_DISABLED=true). OTEL_SERVICE_NAME, when set, overrides `service_name`.

    `env` (default os.environ) decides only whether tracing is on: the SDK itself reads the
    sampler, the endpoint and the exporter's other settings from os.environ."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(env.get(name, "").strip() for name in _ENDPOINTS):
        return None
    # Imported only when tracing is on: the exporter is about 0.25 s of CPU at every start.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider.get_tracer(service_name), provider)


def parent_from(pairs: Iterable[tuple[str, Any]]) -> Context | None:
    """The remote parent named by the `traceparent` (and `tracestate`) among `pairs` (gRPC
    metadata, or decoded HTTP headers with lowercase names); None when there is none."""
    carrier = {k: v for k, v in pairs if k in (TRACEPARENT, TRACESTATE) and isinstance(v, str)}
    if TRACEPARENT not in carrier:
        return None
    return _propagator.extract(carrier)


def end_rpc_span(span: Span, code: str, *, server: bool) -> None:
    """Ends a gRPC call's span with its status code (a grpc.StatusCode name): every failure is
    an error on the client's side, only the server's own failures on the server's."""
    span.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
    if code != "OK" and (not server or code in _SERVER_ERRORS):
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def traceparent_of(span: Span) -> tuple[str, str] | None:
    """The W3C traceparent metadata entry that makes `span` the parent of the callee's spans."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    flags = int(context.trace_flags)
    return TRACEPARENT, f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


def log_fields(span: Span) -> str:
    """`, "trace_id": ..., "span_id": ...` for a log line's encoded tail ("" for no span)."""
    context = span.get_span_context()
    if not context.is_valid:
        return ""
    return f', "trace_id": "{context.trace_id:032x}", "span_id": "{context.span_id:016x}"'


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span, hex, or None outside a valid one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
