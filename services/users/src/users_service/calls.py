"""Per-call plumbing: the request id, one log line per RPC, domain errors -> status, the gate,
and (telemetry.py) the call's metrics and span, the access check (access.py)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

import grpc
from plumbing.request_ids import REQUEST_ID_KEY, from_metadata, request_id_var
from plumbing.tls import peer_identity
from plumbing.tracing import Tracer, dropped_early, end_rpc_span, log_fields

from users_service.access import Access, Guard
from users_service.caller import Caller
from users_service.client_errors import checked, lenient
from users_service.drain import LameDuck
from users_service.limits import Admission
from users_service.registration import WrappingServer
from users_service.reply_cache import serializing
from users_service.rpc_log import RpcLog
from users_service.status import MAPPED_ERRORS, abort_with
from users_service.stream_headers import send_request_id, sends_headers_itself
from users_service.telemetry import ServerMetrics, server_span

logger = logging.getLogger(__name__)
rpc_log = RpcLog(logger)

USER_AGENT_KEY = "user-agent"
# The verified identity (SANs, else CN) of the client certificate of the current call, over
# mTLS; None without one. Handlers read it here (or call plumbing.tls.peer_identity).
peer_identity_var: ContextVar[str | None] = ContextVar("peer_identity", default=None)
_json = json.encoder.encode_basestring_ascii
# What a call records besides its log line: metrics and a span, each None when off.
Telemetry = tuple[ServerMetrics | None, Tracer | None]
# A write's admission (limits.py): raises RateLimited or StorageFull; given the call's verified
# caller, or None where the access check is off.
Admit = Callable[[grpc.aio.ServicerContext, Caller | None], None]


def _user_agent(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    return next((str(v) for k, v in metadata or () if k == USER_AGENT_KEY), None)


def peer_fields(context: grpc.aio.ServicerContext, agent: str | None, identity: str | None) -> str:
    """The log line's fields on who called: address, user agent, verified identity (mTLS)."""
    fields = f', "peer": {_json(context.peer())}'
    if agent is not None:
        fields += f', "user_agent": {_json(agent)}'
    if identity is not None:
        fields += f', "peer_identity": {_json(identity)}'
    return fields


class _Call:
    """The life of one call: its request id, its log line, its errors mapped to a status, its
    metrics and its server span (each only when on).

    The request id goes back in the trailers, in the call's final batch: headers set here would
    be a batch of their own, a costly hand-off per call (docs/performance.md).

    Every handler is wrapped once, as it is registered (CallWrapping.server), not by a grpc.aio
    ServerInterceptor, which rebuilds its chain on every call (docs/performance.md).
    """

    __slots__ = (
        "_context",
        "_method",
        "_metrics",
        "_peer",
        "_request_id",
        "_span",
        "_started",
        "metadata",
    )

    def __init__(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        telemetry: Telemetry,
        *,
        identities: bool = True,
    ) -> None:
        self._method = method
        self._context = context
        # Each call runs in its own task, hence its own copy of the context: setting the
        # variable never leaks into another call, and there is nothing to reset afterwards.
        self.metadata = metadata = context.invocation_metadata()  # once: each call builds one
        self._request_id = from_metadata(metadata)
        request_id_var.set(self._request_id)
        # Asked only where a client may have presented a certificate (mTLS): grpc builds an
        # auth context to answer, a cost every plaintext or TLS-only call would pay for None.
        identity = peer_identity(context) if identities else None
        if identity is not None:
            peer_identity_var.set(identity)
        # Now, while the call is surely alive: asking the context of a stream that grpc has
        # closed (from another task) crashes the process.
        self._peer = peer_fields(context, _user_agent(metadata), identity)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self._request_id),))
        metrics, tracer = telemetry
        self._metrics = metrics
        self._span = None
        if tracer is not None:
            # A call the sampler drops gets its ids in the log line, and no span at all.
            dropped = dropped_early(tracer, metadata)
            if dropped is not None:
                self._peer += dropped
            else:
                self._span = server_span(tracer, method, metadata)
                self._peer += log_fields(self._span)  # the line joins the trace
        self._started = time.perf_counter() if metrics is None else metrics.calls.started(method)

    async def failed(self, error: BaseException) -> None:
        """Ends the call after `error`: a domain error becomes its status; logs the outcome."""
        try:
            if isinstance(error, MAPPED_ERRORS):
                await abort_with(self._context, error)
        except BaseException as raised:
            self.finished(raised)
            raise
        self.finished(error)

    def finished(self, error: BaseException | None = None) -> None:
        """Logs the call's one line, with the code it ended with."""
        seconds = time.perf_counter() - self._started
        code = _final_code(self._context) if error is None else self._outcome(error)
        rpc_log.write(self._method, code, seconds * 1000, self._request_id, self._peer)
        if self._metrics is not None:
            self._metrics.calls.ended(self._method, code, seconds)
        if self._span is not None:
            end_rpc_span(self._span, code, server=True)

    def _outcome(self, error: BaseException) -> str:
        if isinstance(error, GeneratorExit):
            # The client stopped reading a server stream; grpc closes the generator, possibly
            # from another task (which has no request id of its own).
            return "CANCELLED"
        if isinstance(error, asyncio.CancelledError):
            return _cancelled_code(self._context)
        if isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
            request_id_var.set(self._request_id)  # on the error's lines too
            logger.error("unhandled error in %s", self._method, exc_info=error)
            return "UNKNOWN"
        return _final_code(self._context)


def _final_code(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return "OK" if code is None else str(code.name)


def _cancelled_code(context: grpc.aio.ServicerContext) -> str:
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"


class CallWrapping:
    """Wraps every handler registered through `server(...)` in the per-call plumbing.

    Once the `gate` closes, calls to the API (`gated_prefix`) are held, then refused with
    UNAVAILABLE (drain.py), while health and reflection still answer.

    Example:
        >>> gate = LameDuck()
        >>> server = grpc.aio.server()
        >>> wrapping = CallWrapping(gate, "/users.v1.")
        >>> users_pb2_grpc.add_UserServiceServicer_to_server(servicer, wrapping.server(server))
    """

    def __init__(
        self,
        gate: LameDuck,
        gated_prefix: str,
        access: Access | None = None,
        *,
        admission: Admission | None = None,
        metrics: ServerMetrics | None = None,
        tracer: Tracer | None = None,
        client_certificates: bool = True,
    ) -> None:
        self._gate = gate
        # False when no client can present a certificate (plaintext, or TLS without client
        # authentication): the calls then skip asking for the peer's identity.
        self._identities = client_certificates
        self._gated_prefix = gated_prefix
        self._access = access  # None: no access check (USERS_AUTH_ENFORCED=false)
        self._admission = admission  # rate limits and the disk reserve (limits.py)
        self._telemetry: Telemetry = (metrics, tracer)

    def server(self, server: Any) -> WrappingServer:
        """What `add_*Servicer_to_server` registers on, so that every handler is wrapped."""
        return WrappingServer(server, self.wrap)

    def wrap(self, method: str, handler: Any) -> Any:
        """`handler` (a grpc.RpcMethodHandler) with the plumbing around its behaviour."""
        attribute, factory = _KINDS[handler.request_streaming, handler.response_streaming]
        behavior = getattr(handler, attribute)
        gate = self._gate if method.startswith(self._gated_prefix) else None
        guard = None if self._access is None else self._access.guard(method)
        wrapped: Callable[..., Any]
        if handler.response_streaming and inspect.isasyncgenfunction(behavior):
            wrapped = _streaming(
                method,
                behavior,
                gate,
                self._telemetry,
                guard,
                identities=self._identities,
                streams_requests=handler.request_streaming,
            )
        else:
            # A streaming handler that writes with context.write (the health Watch) stays a
            # coroutine, like every unary-response one.
            admit = None if self._admission is None else self._admission.for_method(method)
            wrapped = _unary(
                method,
                behavior,
                gate,
                self._telemetry,
                guard=guard,
                admit=admit,
                streams_requests=handler.request_streaming,
                identities=self._identities,
            )
        return factory(
            wrapped,
            # Bytes that do not parse reach the handler as a marker: INVALID_ARGUMENT, not UNKNOWN.
            request_deserializer=lenient(handler.request_deserializer, method),
            # GetUser may answer a UserReply (reply_cache.py): its bytes go out as they are.
            response_serializer=serializing(handler.response_serializer),
        )


def _unary(
    method: str,
    behavior: Callable[..., Awaitable[Any]],
    gate: LameDuck | None,
    telemetry: Telemetry,
    *,
    guard: Guard | None,
    admit: Admit | None,
    streams_requests: bool,
    identities: bool,
) -> Callable[..., Awaitable[Any]]:
    """A handler that returns one response (or writes with context.write), wrapped."""

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(method, context, telemetry, identities=identities)
        try:
            if gate is not None and gate.closed:
                await gate.refuse()
            request = checked(request, stream=streams_requests)  # malformed: INVALID_ARGUMENT
            caller = None
            if guard is not None:
                caller = guard.admit_now(call.metadata, request) or await guard.admit(
                    call.metadata, request
                )
            if admit is not None:
                admit(context, caller)  # after the guard: quotas count per identity
            if streams_requests and guard is not None:
                # Admitted: headers now tell a client streaming rows in (ImportUsers) that
                # it may write; refused, it would race the refusal (INTERNAL in grpc aio).
                await send_request_id(context)
            response = await behavior(request, context)
            if guard is not None and caller is not None:
                response = guard.shown(response, caller)
        except BaseException as error:
            await call.failed(error)
            raise
        finally:
            if gate is not None and gate.closed:
                gate.answered()
        call.finished()
        return response

    return wrapped


def _streaming(
    method: str,
    behavior: Callable[..., AsyncGenerator[Any, None]],
    gate: LameDuck | None,
    telemetry: Telemetry,
    guard: Guard | None,
    *,
    identities: bool,
    streams_requests: bool,
) -> Callable[..., AsyncIterator[Any]]:
    """A handler that yields its responses, wrapped."""
    send_headers = not sends_headers_itself(behavior)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method, context, telemetry, identities=identities)
        try:
            if gate is not None and gate.closed:
                await gate.refuse()
            request = checked(request, stream=streams_requests)  # malformed: INVALID_ARGUMENT
            caller = None
            if guard is not None:
                caller = guard.admit_now(call.metadata, request) or await guard.admit(
                    call.metadata, request
                )
            if send_headers:
                # Streams carry the request id in their headers as well: a client reading a long
                # stream knows it before the end.
                await send_request_id(context)
            # aclosing: when the client stops reading, grpc closes this generator, and the
            # handler's own `finally` (WatchUsers releasing its subscription) runs now, not
            # whenever the garbage collector gets to it.
            async with contextlib.aclosing(behavior(request, context)) as responses:
                async for response in responses:
                    if guard is not None and caller is not None:
                        response = guard.shown(response, caller)  # noqa: PLW2901 - as shown
                    yield response
        except BaseException as error:
            await call.failed(error)
            raise
        finally:
            if gate is not None and gate.closed:
                gate.answered()
        call.finished()

    return wrapped


# (request streaming, response streaming) -> the handler's behaviour and its factory.
_KINDS: dict[tuple[bool, bool], tuple[str, Callable[..., Any]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}
