"""GET /api/v1/users/events: the WatchUsers change feed as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from users.v1 import users_pb2

from webapp.api import ERRORS
from webapp.convert import event_json
from webapp.deps import users_client

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streams"])

KEEPALIVE_SECONDS = 15.0
RECONNECT_MS = 2000
SUBSCRIBE_WAIT_SECONDS = 0.5


async def _frames(call: grpc.aio.UnaryStreamCall, stopping: asyncio.Event) -> AsyncIterator[bytes]:
    # The opening comment sends the headers at once, so a client knows it is subscribed.
    yield format_sse_event(comment="subscribed", retry=RECONNECT_MS)
    stop = asyncio.ensure_future(stopping.wait())
    # One read stays pending across keep-alive ticks: cancelling a read would cancel the RPC.
    read: asyncio.Future[users_pb2.UserEvent | object] | None = None
    try:
        while not stop.done():
            read = read or asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait(
                {read, stop}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if read in done:
                event, read = read.result(), None
                if not isinstance(event, users_pb2.UserEvent):
                    return  # EOF: the users service drains; the client reconnects
                data = event_json(event)
                yield format_sse_event(data_str=json.dumps(data), event=data["type"])
            elif not done:
                yield KEEPALIVE_COMMENT
    except grpc.aio.AioRpcError as exc:
        logger.info("WatchUsers ended: %s %s", exc.code().name, exc.details())
    finally:
        stop.cancel()
        if read is not None:
            read.cancel()
        call.cancel()


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
    client = users_client(request)
    call = client.users.WatchUsers(users_pb2.WatchUsersRequest(), **client.streaming())
    try:
        await call.wait_for_connection()  # a dead users service is a 503 here, not an empty feed
        # The users service sends its headers as the watch starts: once they are here, events
        # made after this response began are in the feed. (Bounded: other servers may not.)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(call.initial_metadata()), SUBSCRIBE_WAIT_SECONDS)
    except BaseException:
        call.cancel()
        raise
    return StreamingResponse(
        _frames(call, client.stopping),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
