"""Server streams' headers: the call's request id, sent by the call wrapper or by the handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from plumbing.request_ids import outgoing_metadata

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def sends_own_headers(handler: _Handler) -> _Handler:
    """Marks a streaming handler that sends its initial metadata itself, with send_request_id.

    The call wrapper (calls.py) sends every other stream's headers before the handler runs.
    WatchUsers subscribes to the feed first and only then sends its headers, so a client that
    has seen the headers sees every later change.
    """
    handler.sends_own_headers = True  # type: ignore[attr-defined]
    return handler


def sends_headers_itself(handler: Callable[..., Any]) -> bool:
    """Whether `handler` was marked with sends_own_headers."""
    return bool(getattr(handler, "sends_own_headers", False))


async def send_request_id(context: grpc.aio.ServicerContext) -> None:
    """Sends the initial metadata: the current call's request id."""
    await context.send_initial_metadata(outgoing_metadata())
