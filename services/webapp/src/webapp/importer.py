"""POST /api/v1/users:import: an NDJSON upload streamed row by row into ImportUsers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from users.v1 import users_pb2

from webapp.api import ERRORS
from webapp.convert import import_summary_json
from webapp.deps import users_client
from webapp.errors import problem

router = APIRouter(tags=["users"])

MAX_LINE_BYTES = 64 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
# A row that is not a JSON object is sent as an empty create (the server rejects it, so the row
# keeps its index and its count); its reason is replaced with this one in the summary.
MALFORMED = "the line is not a JSON object of string fields username, email, display_name"
_FIELDS = ("username", "email", "display_name", "request_id")
_REMEMBERED_MALFORMED = 1000

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"username": "ada", "email": "ada@example.com"}\n{"username": "bob"}\n',
            }
        },
    }
}


async def ndjson_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes | None]:
    """Yields the non-blank lines of a byte stream; None for a line longer than MAX_LINE_BYTES."""
    buffer, skipping = b"", False
    async for chunk in chunks:
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            if skipping:
                skipping = False
            elif line.strip():
                yield line
        if len(buffer) > MAX_LINE_BYTES:
            if not skipping:
                yield None
            buffer, skipping = b"", True
    if buffer.strip() and not skipping:
        yield buffer


def parse_row(line: bytes | None) -> users_pb2.CreateUserRequest | None:
    """The create request of one NDJSON line, or None when the line is malformed."""
    try:
        row: Any = json.loads(line) if line is not None else None
    except ValueError:
        return None
    if not isinstance(row, dict) or not all(isinstance(row.get(f, ""), str) for f in _FIELDS):
        return None
    return users_pb2.CreateUserRequest(**{f: row[f] for f in _FIELDS if f in row})


@router.post(
    "/api/v1/users:import",
    responses={**ERRORS, 415: {"description": "The body is not NDJSON."}},
    openapi_extra=OPENAPI_BODY,
)
async def import_users(request: Request) -> JSONResponse:
    """Creates users from an NDJSON body (one user object a line), streamed as it uploads.

    Answers with the import summary; rejected rows are identified by their index among the
    non-blank lines, counting from 0.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in NDJSON_TYPES:
        return problem(415, f"send the rows as {NDJSON_TYPES[0]}, one JSON object a line")
    malformed: set[int] = set()
    client = users_client(request)
    call = client.users.ImportUsers(**client.streaming())
    try:
        index = 0
        async for line in ndjson_lines(request.stream()):
            row = parse_row(line)
            if row is None:
                if len(malformed) < _REMEMBERED_MALFORMED:
                    malformed.add(index)
                row = users_pb2.CreateUserRequest()
            index += 1
            try:
                await call.write(row)
            except asyncio.InvalidStateError:
                break  # the call ended early; awaiting it below raises its status
        await call.done_writing()
        summary = await call
    finally:
        call.cancel()  # a no-op once done; stops the import when the uploader went away
    for rejection in summary.rejections:
        if rejection.index in malformed:
            rejection.field, rejection.reason = "", MALFORMED
    return JSONResponse(import_summary_json(summary))
