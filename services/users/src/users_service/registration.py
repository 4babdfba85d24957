"""Handlers wrapped once, as they are registered: the server that add_*Servicer_to_server sees.

Every wrapped handler is served through one generic handler (a dict by method name), not as a
grpc "registered method": grpc.aio keeps one pending request-call future per registered method
and `asyncio.wait`s on all of them after every call, so each call paid for every method the
server has (24 here: 129,000 of 657,000 instructions per GetUser; docs/performance.md). With one
generic handler there is one future, whatever the number of methods. Upstream: the per-call
`asyncio.wait` came with grpc/grpc#41796 (registered methods in the AsyncIO server); the open
grpc/grpc#43461 replaces it with one accept loop per method. With that in a grpcio release, this
module can go back to registering methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

Wrap = Callable[[str, Any], Any]  # (full method name, grpc.RpcMethodHandler) -> its replacement


class WrappingServer:
    """A grpc.aio server as the generated `add_*Servicer_to_server` functions see it: the method
    handlers they register reach the server through `wrap`.

    Example:
        >>> health_pb2_grpc.add_HealthServicer_to_server(health, WrappingServer(server, wrap))
    """

    def __init__(self, server: Any, wrap: Wrap) -> None:
        self._server = server
        self._wrap = wrap
        # First among the generic handlers, so it answers before the stubs' own generic ones.
        self._by_name = _ByName()
        server.add_generic_rpc_handlers((self._by_name,))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """The handlers the generated code registers by method name, each wrapped now and served
        by name through one generic handler (see the module's docstring)."""
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self._by_name.handlers[method] = self._wrap(method, handler)

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[Any]) -> None:
        """Generic handlers (reflection's), whose handlers are wrapped on first use."""
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGeneric(generic, self._wrap) for generic in generic_handlers)
        )


class _ByName(grpc.GenericRpcHandler):  # type: ignore[misc]
    """The wrapped handlers by full method name (/package.Service/Method)."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def service(self, handler_call_details: Any) -> Any:
        """The method's handler, None for a method it does not have."""
        return self.handlers.get(handler_call_details.method)


class _WrappedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose method handlers come out wrapped (each wrapped once)."""

    def __init__(self, inner: Any, wrap: Wrap) -> None:
        self._inner = inner
        self._wrap = wrap
        # method -> (the handler, wrapped): only methods the inner handler knows are kept.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def service(self, handler_call_details: Any) -> Any:
        """The inner handler's method handler, wrapped (None where it has none)."""
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self._wrap(method, handler))
        return cached[1]
