"""GET /users/: every user (ExportUsers) or the named ones (GetUsers) as NDJSON, streamed as they
arrive."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from webapp.errors import StreamAbortedError
from webapp.gateway import User, UsersServiceError, UserStream
from webapp.routes.api import ERRORS
from webapp.routes.deps import users_gateway

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streams"])

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

NDJSON = "application/x-ndjson"


def ndjson_line(user: User) -> bytes:
    """One NDJSON line."""
    return json.dumps(user, separators=(",", ":")).encode() + b"\n"


def ndjson_lines(users: list[User]) -> bytes:
    """One NDJSON line per user, joined."""
    return b"".join(map(ndjson_line, users))


# Messages' lines read ahead of the HTTP client: bounds the webapp's memory per stream (one user a
# message; from ExportUsers up to 500: about 100 KB of NDJSON for users like the bench's).
QUEUE_CHUNKS = 8
# A line waits at most LINGER_SECONDS for others to share its socket write (each write costs a
# syscall; one per user made the webapp CPU-bound), and a chunk is sent once it reaches CHUNK_BYTES.
LINGER_SECONDS = 0.005
CHUNK_BYTES = 64 * 1024
_END = object()


async def _pump(stream: UserStream, queue: asyncio.Queue[object]) -> None:
    """Reads the users into the queue as NDJSON, a message's lines at a time, then _END or the
    stream's error."""
    try:
        async for users in stream:
            await queue.put(ndjson_lines(users))
    except UsersServiceError as exc:
        await queue.put(exc)
    else:
        await queue.put(_END)


async def _gather(queue: asyncio.Queue[object]) -> list[object]:
    """The next line, with those that follow within LINGER_SECONDS (up to CHUNK_BYTES)."""
    items = [await queue.get()]
    size, deadline = 0, asyncio.get_running_loop().time() + LINGER_SECONDS
    while isinstance(last := items[-1], bytes) and (size := size + len(last)) < CHUNK_BYTES:
        try:
            async with asyncio.timeout_at(deadline):
                items.append(await queue.get())
        except TimeoutError:
            break
    return items


async def _chunks(queue: asyncio.Queue[object]) -> AsyncIterator[bytes]:
    """Yields the lines in chunks; raises the call's error, returns at its end."""
    while True:
        items = await _gather(queue)
        tail = items.pop() if not isinstance(items[-1], bytes) else None
        if items:
            yield b"".join(item for item in items if isinstance(item, bytes))
        if isinstance(tail, UsersServiceError):
            raise tail
        if tail is _END:
            return


async def _lines(stream: UserStream) -> AsyncIterator[bytes]:
    if stream.first is None:
        return  # no user at all: an empty body is valid NDJSON
    queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_CHUNKS)
    reader = asyncio.create_task(_pump(stream, queue))
    try:
        yield ndjson_lines(stream.first)
        async for chunk in _chunks(queue):
            yield chunk
    except UsersServiceError as exc:
        # The 200 is already sent: drop the connection so the client sees a truncated body, not
        # a short list that looks complete.
        logger.warning("the users stream failed mid-way: %s %s", exc.code, exc.reason)
        raise StreamAbortedError from exc
    finally:
        reader.cancel()
        stream.close()


# As many of each as the users service's GetUsers takes (the URL limit comes first: 414).
MAX_NAMED = 1000
IDS = Query(description="Only these ids.", max_length=MAX_NAMED)
USERNAMES = Query(description="Only these usernames.", max_length=MAX_NAMED)


@router.get(
    "/users/",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {"schema": {"type": "string"}}}, "description": "NDJSON."},
        **ERRORS,
    },
)
async def stream_users(
    request: Request,
    id: Annotated[list[Int64], IDS] = [],  # noqa: B006
    username: Annotated[list[str], USERNAMES] = [],  # noqa: B006
) -> StreamingResponse:
    """Streams users as NDJSON (one JSON object a line): every user in id order, or only those
    named by `id` and `username` (misses are skipped). Errors before the first line are problem
    responses; a failure after it ends the body early.
    """
    # Errors before the first user (503, 504, 422) still become a status code here.
    stream = await users_gateway(request).stream(id, username)
    return StreamingResponse(_lines(stream), media_type=NDJSON)
