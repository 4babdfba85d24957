"""POST /api/v1/users:import: an NDJSON upload streamed row by row into ImportUsers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from webapp.errors import problem
from webapp.routes.api import ERRORS
from webapp.routes.deps import users_gateway

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


def parse_row(line: bytes | None) -> dict[str, str] | None:
    """The user fields of one NDJSON line, or None when the line is malformed."""
    try:
        row: Any = json.loads(line) if line is not None else None
    except ValueError:
        return None
    if not isinstance(row, dict) or not all(isinstance(row.get(f, ""), str) for f in _FIELDS):
        return None
    return {f: row[f] for f in _FIELDS if f in row}


async def _rows(
    lines: AsyncIterator[bytes | None], malformed: set[int]
) -> AsyncIterator[dict[str, str]]:
    """The rows to import, one a line; a malformed line is an empty row, its index noted."""
    index = 0
    async for line in lines:
        row = parse_row(line)
        if row is None:
            if len(malformed) < _REMEMBERED_MALFORMED:
                malformed.add(index)
            row = {}
        index += 1
        yield row


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
    rows = _rows(ndjson_lines(request.stream()), malformed)
    summary = await users_gateway(request).import_rows(rows)
    for rejection in summary["rejections"]:
        if rejection["index"] in malformed:
            rejection["field"], rejection["reason"] = "", MALFORMED
    return JSONResponse(summary)
