"""Per-call plumbing: the request id, one structured log line per RPC, domain errors -> status."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from users_service.logs import request_id_var
from users_service.status import MAPPED_ERRORS, abort_with

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _request_id(metadata: Sequence[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value):
            return value
    return uuid.uuid4().hex


def sends_own_headers(handler: _Handler) -> _Handler:
    """Marks a streaming handler that sends its initial metadata itself, with send_request_id.

    WatchUsers subscribes to the feed first and only then sends its headers, so a client that
    has seen the headers sees every later change.
    """
    handler.sends_own_headers = True  # type: ignore[attr-defined]
    return handler


async def send_request_id(context: grpc.aio.ServicerContext) -> None:
    """Sends the initial metadata: the current call's request id."""
    await context.send_initial_metadata(((REQUEST_ID_KEY, request_id_var.get()),))


def _final_code(context: grpc.aio.ServicerContext, outcome: str | None) -> str:
    if outcome is not None:
        return outcome
    code = context.code()
    return "OK" if code is None else str(code.name)


class _CallScope:
    """The life of one call: its request id, its headers, errors mapped, its one log line.

    A plain class rather than @asynccontextmanager: it runs on every call, and a generator-based
    context manager adds a generator, its frames and their resumptions to each.
    """

    __slots__ = ("_context", "_method", "_request_id", "_send_headers", "_started")

    def __init__(
        self, method: str, context: grpc.aio.ServicerContext, *, send_headers: bool = True
    ) -> None:
        self._method = method
        self._context = context
        self._send_headers = send_headers
        # Each call runs in its own task, hence its own copy of the context: setting the
        # variable never leaks into another call, and there is nothing to reset afterwards.
        self._request_id = _request_id(context.invocation_metadata())
        request_id_var.set(self._request_id)
        self._started = time.perf_counter()

    async def __aenter__(self) -> None:
        if self._send_headers:
            try:
                await send_request_id(self._context)
            except BaseException as error:
                self._finish(error)
                raise

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        try:
            if isinstance(error, MAPPED_ERRORS):
                await abort_with(self._context, error)
        except BaseException as raised:
            self._finish(raised)
            raise
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        outcome: str | None = None
        if isinstance(error, GeneratorExit):
            # The client stopped reading a server stream; grpc closes the generator, possibly
            # from another task (so the request id is set again below).
            outcome = "CANCELLED"
        elif isinstance(error, asyncio.CancelledError):
            outcome = _cancelled_code(self._context)
        elif isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
            outcome = "UNKNOWN"
            logger.error("unhandled error in %s", self._method, exc_info=error)
        request_id_var.set(self._request_id)
        _log_rpc(self._method, _final_code(self._context, outcome), self._started)


def _cancelled_code(context: grpc.aio.ServicerContext) -> str:
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"


def _log_rpc(method: str, code: str, started: float) -> None:
    """The one log line of an RPC: method, status code and duration."""
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    logger.info(
        "rpc %s %s",
        method,
        code,
        extra={"method": method, "code": code, "duration_ms": duration_ms},
    )


def _wrap_unary_response(method: str, behavior: Callable[..., Awaitable[Any]]) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _CallScope(method, context):
            return await behavior(request, context)
        raise AssertionError("unreachable: the scope re-raises")  # pragma: no cover

    return wrapped


def _wrap_stream_response(method: str, behavior: Callable[..., Any]) -> Any:
    if not inspect.isasyncgenfunction(behavior):
        # A handler that writes with context.write (the health Watch) stays a coroutine.
        return _wrap_unary_response(method, behavior)

    send_headers = not getattr(behavior, "sends_own_headers", False)

    async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _CallScope(method, context, send_headers=send_headers):
            async for response in behavior(request, context):
                yield response

    return wrapped


# (request streaming, response streaming) -> the handler's behaviour, its factory, our wrapper.
_KINDS: dict[tuple[bool, bool], tuple[str, Callable[..., Any], Callable[..., Any]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler, _wrap_unary_response),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler, _wrap_unary_response),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler, _wrap_stream_response),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler, _wrap_stream_response),
}


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
    """The behaviour of every API call that arrives while the server drains."""
    await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is draining: retry elsewhere")


class RequestContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Gives every call a request id (from `x-request-id` or new), logs it, maps domain errors.

    Once `draining` is set, calls to the API (`gated_prefix`) are refused with UNAVAILABLE
    while health and reflection still answer.

    Example:
        >>> draining = asyncio.Event()
        >>> interceptor = RequestContextInterceptor(draining, "/users.v1.")
        >>> server = grpc.aio.server(interceptors=[interceptor])  # doctest: +SKIP
    """

    def __init__(self, draining: asyncio.Event, gated_prefix: str) -> None:
        self._draining = draining
        self._gated_prefix = gated_prefix
        # (method, refused) -> (the handler wrapped, our wrapper): built once per method, not
        # per call. The key holds no client input: only methods that have a handler get here.
        self._wrapped: dict[tuple[str, bool], tuple[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        key = (method, self._draining.is_set() and method.startswith(self._gated_prefix))
        cached = self._wrapped.get(key)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[key] = (handler, _wrap(handler, method, refused=key[1]))
        return cached[1]


def _wrap(handler: Any, method: str, *, refused: bool) -> Any:
    attribute, factory, wrap = _KINDS[handler.request_streaming, handler.response_streaming]
    behavior = _refuse if refused else getattr(handler, attribute)
    return factory(
        wrap(method, behavior),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
