"""OpenTelemetry traces: set up from the standard OTEL_* variables, off unless an endpoint is set.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans go over
OTLP/gRPC to that collector, in batches from a thread of the SDK's (never on a call's path);
the sampler is the SDK's, from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default:
parentbased_always_on). Unset, `configure` returns None and the services skip every tracing step.
Trace context travels as W3C `traceparent`/`tracestate`, in HTTP headers and gRPC metadata alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
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
    "drop_span",
    "dropped_early",
    "dropped_traceparent",
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
# A version-00 traceparent exactly as W3C writes it; anything else goes to the SDK's propagator.
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# The (trace id, span id) log fields of a call whose span was dropped before it was built
# (dropped_early): the current span then says nothing, so the log record factory reads these.
_dropped_ids: ContextVar[tuple[str, str] | None] = ContextVar("dropped_ids", default=None)


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
    provider = TracerProvider(resource=Resource.create(attributes), id_generator=_PrimedIds())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider.get_tracer(service_name), provider)


class _PrimedIds(RandomIdGenerator):
    """Random ids, except that the next trace id can be given in advance (`prime`): a root
    whose trace id dropped_early drew and found sampled gets that id from the SDK, whose
    ratio sampler then decides on the same id (the sampled share stays the configured ratio)."""

    def __init__(self) -> None:
        self._next = 0

    def prime(self, trace_id: int) -> None:
        self._next = trace_id

    def generate_trace_id(self) -> int:
        trace_id, self._next = self._next, 0
        return trace_id or super().generate_trace_id()


def dropped_early(tracer: Tracer, pairs: Iterable[tuple[str, Any]]) -> str | None:
    """When `tracer`'s sampler would drop a server span for a call with these `pairs` (gRPC
    metadata, or decoded HTTP headers with lowercase names): the call's log fields
    (`, "trace_id": ..., "span_id": ...`, the caller's trace id if it sent one), also made
    current for the call's other log lines. None when a span must be started (it may record).

    Decided before anything is built, as the SDK's samplers decide (ALWAYS_OFF, ALWAYS_ON,
    TraceIdRatioBased and ParentBased over them, from the OTEL_TRACES_SAMPLER variables), so
    that a call nobody samples costs no span, no context and no attach. Any other sampler, and
    any traceparent not in the plain version-00 form, go to the SDK as before. The call's own
    context is left as it was: nothing downstream of a dropped call is traced either.
    """
    sampler = getattr(tracer, "sampler", None)
    ids = getattr(tracer, "id_generator", None)
    if sampler is None or not isinstance(ids, RandomIdGenerator):
        return None
    traceparent = next((v for k, v in pairs if k == TRACEPARENT), None)
    sampled: bool | None = None  # the remote parent's flag; None: no parent
    if traceparent is None:
        trace_id = ids.generate_trace_id()
    else:
        match = _TRACEPARENT_00.fullmatch(traceparent) if isinstance(traceparent, str) else None
        if match is None:
            return None
        trace_id, sampled = int(match[1], 16), bool(int(match[3], 16) & 1)
        if not trace_id or not int(match[2], 16):
            return None  # an invalid parent: the SDK starts a root
    if not _drops(sampler, sampled, trace_id):
        if sampled is None and isinstance(ids, _PrimedIds):
            ids.prime(trace_id)  # the SDK's root gets the id decided on
        return None
    return drop_span(trace_id, ids.generate_span_id())


def drop_span(trace_id: int, span_id: int) -> str:
    """Makes these the ids of the current call or request, whose span the sampler dropped
    before it was built: its log records (current_ids) and its calls (dropped_traceparent)
    read them in its context. Returns its log fields (`, "trace_id": ..., "span_id": ...`).
    No span, no OpenTelemetry context, no attach: a few hundred nanoseconds."""
    ids_hex = (f"{trace_id:032x}", f"{span_id:016x}")
    _dropped_ids.set(ids_hex)  # the call's own task: nothing leaks to other calls
    return f', "trace_id": "{ids_hex[0]}", "span_id": "{ids_hex[1]}"'


def dropped_traceparent() -> tuple[str, str] | None:
    """The W3C traceparent metadata entry (unsampled) that carries the ids of a call or
    request dropped early (drop_span) on to its callee; None when none is current."""
    ids = _dropped_ids.get()
    return None if ids is None else (TRACEPARENT, f"00-{ids[0]}-{ids[1]}-00")


def _drops(sampler: Sampler, sampled: bool | None, trace_id: int) -> bool:
    """Whether `sampler` surely drops a span of `trace_id` under a remote parent whose sampled
    flag is `sampled` (None: no parent); False when it would record, or might."""
    if isinstance(sampler, ParentBased):
        if sampled is None:
            delegate = sampler._root  # the SDK keeps its delegates private
        elif sampled:
            delegate = sampler._remote_parent_sampled
        else:
            delegate = sampler._remote_parent_not_sampled
        return not isinstance(delegate, ParentBased) and _drops(delegate, None, trace_id)
    if isinstance(sampler, StaticSampler):
        return sampler._decision is Decision.DROP
    if isinstance(sampler, TraceIdRatioBased):
        # TraceIdRatioBased.should_sample's own test, on the id the span would have.
        return trace_id & TraceIdRatioBased.TRACE_ID_LIMIT >= sampler.bound
    return False


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
    """(trace_id, span_id) of the current span, hex, or those of a call dropped early
    (dropped_early); None outside both."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return _dropped_ids.get()  # a call dropped early, else None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
