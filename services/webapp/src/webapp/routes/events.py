"""GET /api/v1/users/events: the WatchUsers change feed as server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from starlette.background import BackgroundTask

from webapp.gateway import UserEvent, UsersServiceError, UserWatch
from webapp.guards import Slots
from webapp.routes.api import ERRORS
from webapp.routes.deps import users_gateway
from webapp.telemetry import WebappMetrics

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streams"])

KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 2000


async def _frames(
    watch: UserWatch, stopping: asyncio.Event, metrics: WebappMetrics | None
) -> AsyncIterator[bytes]:
    # The opening comment sends the headers at once, so a client knows it is subscribed.
    yield format_sse_event(comment="subscribed", retry=RECONNECT_MS)
    stop = asyncio.ensure_future(stopping.wait())
    # One read stays pending across keep-alive ticks: cancelling a read would cancel the RPC.
    read: asyncio.Future[UserEvent | None] | None = None
    if metrics is not None:  # userstack_webapp_sse_subscribers: down again in the finally
        metrics.sse_subscribers.inc()
    try:
        while not stop.done():
            read = read or asyncio.ensure_future(watch.next())
            waits: set[asyncio.Future[Any]] = {read, stop}
            done, _ = await asyncio.wait(
                waits, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if read in done:
                event, read = read.result(), None
                if event is None:
                    return  # EOF: the users service drains; the client reconnects
                yield format_sse_event(data_str=json.dumps(event), event=event["type"])
            elif not done:
                yield KEEPALIVE_COMMENT
    except UsersServiceError as exc:
        logger.info("WatchUsers ended: %s %s", exc.code, exc.reason)
    finally:
        stop.cancel()
        if read is not None:
            read.cancel()
        watch.close()
        if metrics is not None:
            metrics.sse_subscribers.dec()


@router.get(
    "/api/v1/users/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "SSE.",
        },
        **ERRORS,
    },
)
async def user_events(request: Request) -> StreamingResponse:
    """Server-sent events for users created, updated and deleted from now on.

    Each event is named `created`, `updated` or `deleted`; its data is
    `{"type": ..., "user": {...}, "event_time": ...}`. The stream ends when either service
    shuts down; EventSource clients reconnect by themselves.
    """
    gateway = users_gateway(request)
    slots: Slots = request.app.state.event_streams
    if not slots.acquire():
        detail = f"all {slots.size} event streams are open; retry shortly"
        raise UsersServiceError(detail, status=503)  # 503 comes with Retry-After
    try:
        watch = await gateway.watch()  # a dead users service is a 503 here, not an empty feed
    except BaseException:
        slots.release()
        raise
    return StreamingResponse(
        _frames(watch, gateway.stopping, gateway.metrics),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Runs once the stream ends, the client gone or not.
        background=BackgroundTask(slots.release),
    )
