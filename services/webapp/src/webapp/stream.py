"""GET /users/: every user (or the named ones) from GetUsers as NDJSON, streamed as it arrives."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from users.v1 import users_pb2

from webapp.api import ERRORS
from webapp.convert import user_json
from webapp.deps import Client

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streams"])

NDJSON = "application/x-ndjson"


def ndjson_line(user: users_pb2.User) -> bytes:
    """One NDJSON line."""
    return json.dumps(user_json(user), separators=(",", ":")).encode() + b"\n"


async def _lines(
    call: grpc.aio.UnaryStreamCall, first: users_pb2.User | Any
) -> AsyncIterator[bytes]:
    try:
        if first is grpc.aio.EOF:
            return
        yield ndjson_line(first)
        while (user := await call.read()) is not grpc.aio.EOF:
            yield ndjson_line(user)
    except grpc.aio.AioRpcError as exc:
        # The 200 is already sent: drop the connection so the client sees a truncated body, not
        # a short list that looks complete.
        logger.warning("GetUsers failed mid-stream: %s %s", exc.code().name, exc.details())
        raise
    finally:
        call.cancel()


@router.get(
    "/users/",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {"schema": {"type": "string"}}}, "description": "NDJSON."},
        **ERRORS,
    },
)
async def stream_users(
    client: Client,
    id: Annotated[list[int], Query(description="Only these ids.")] = [],  # noqa: B006
    username: Annotated[list[str], Query(description="Only these usernames.")] = [],  # noqa: B006
) -> StreamingResponse:
    """Streams users as NDJSON (one JSON object a line): every user in id order, or only those
    named by `id` and `username` (misses are skipped). Errors before the first line are problem
    responses; a failure after it ends the body early.
    """
    call = client.users.GetUsers(
        users_pb2.GetUsersRequest(ids=id, usernames=username), **client.streaming()
    )
    try:
        first = await call.read()  # errors (503, 504, 422) still become a status code here
    except BaseException:
        call.cancel()
        raise
    return StreamingResponse(_lines(call, first), media_type=NDJSON)
