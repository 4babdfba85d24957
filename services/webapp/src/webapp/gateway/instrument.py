"""The users channel's calls recorded through their stubs: duration and code by method (the
metrics), a client span whose W3C traceparent goes in the call's metadata (the tracer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import trace
from plumbing.metrics import CallMetrics
from plumbing.tracing import (
    Span,
    SpanKind,
    Tracer,
    dropped_traceparent,
    end_rpc_span,
    traceparent_of,
)

from webapp.telemetry import WebappMetrics


def instrument_stub(
    stub: Any, service: str, metrics: WebappMetrics | None, tracer: Tracer | None
) -> None:
    """Replaces each method of `stub` with one that records its call: its duration and code
    (metrics), a client span whose traceparent goes in the call's metadata (tracer)."""
    if metrics is None and tracer is None:
        return
    calls = None if metrics is None else metrics.calls
    for name, callable_ in list(vars(stub).items()):
        method = f"{service}/{name}"
        if isinstance(
            callable_, grpc.aio.UnaryUnaryMultiCallable | grpc.aio.StreamUnaryMultiCallable
        ):
            setattr(stub, name, _unary(callable_, method, calls, tracer))
        elif isinstance(
            callable_, grpc.aio.UnaryStreamMultiCallable | grpc.aio.StreamStreamMultiCallable
        ):
            setattr(stub, name, _streaming(callable_, method, calls, tracer))


def _client_span(tracer: Tracer, method: str, kwargs: dict[str, Any]) -> Span | None:
    """A client span for the call, current span its parent; its traceparent into the metadata
    (attributes only on a span that records).

    Under a request that is not sampled no span is made (a child of an unsampled parent is not
    sampled by the parent-based samplers, and costs as much as a recorded one to start): the
    request's own traceparent goes on, so the trace id still reaches the users service; that
    of a request whose span was dropped before it was built (telemetry.RequestSpans) too."""
    dropped = dropped_traceparent()
    if dropped is not None:
        kwargs["metadata"] = (*(kwargs.get("metadata") or ()), dropped)
        return None
    current = trace.get_current_span()
    span = None
    if current.is_recording() or not current.get_span_context().is_valid:
        span = tracer.start_span(method, kind=SpanKind.CLIENT)
        if span.is_recording():
            service, _, name = method.rpartition("/")
            span.set_attributes({"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
    entry = traceparent_of(span or current)
    if entry is not None:
        kwargs["metadata"] = (*(kwargs.get("metadata") or ()), entry)
    return span


def _unary(
    callable_: Any, method: str, calls: CallMetrics | None, tracer: Tracer | None
) -> Callable[..., Any]:
    async def call(request: Any, **kwargs: Any) -> Any:
        span = None if tracer is None else _client_span(tracer, method, kwargs)
        started = time.perf_counter()
        code = "OK"
        try:
            return await callable_(request, **kwargs)
        except grpc.aio.AioRpcError as error:
            code = error.code().name
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            if calls is not None:
                calls.observe(method, code, time.perf_counter() - started)
            if span is not None:
                end_rpc_span(span, code, server=False)

    return call


def _streaming(
    callable_: Any, method: str, calls: CallMetrics | None, tracer: Tracer | None
) -> Callable[..., Any]:
    """A streaming call is returned as is (its callers read it); recorded when done."""

    def call(request: Any, **kwargs: Any) -> Any:
        span = None if tracer is None else _client_span(tracer, method, kwargs)
        started = time.perf_counter()
        rpc = callable_(request, **kwargs)

        async def record() -> None:
            code = (await rpc.code()).name
            if calls is not None:
                calls.observe(method, code, time.perf_counter() - started)
            if span is not None:
                end_rpc_span(span, code, server=False)

        tasks: set[asyncio.Task[None]] = set()

        def done(_: Any) -> None:
            task = asyncio.get_running_loop().create_task(record())
            tasks.add(task)  # a strong reference until it has run
            task.add_done_callback(tasks.discard)

        rpc.add_done_callback(done)
        return rpc

    return call
