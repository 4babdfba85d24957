"""Opaque ListUsers page tokens, bound to the filter they were issued for: a token resumes after
an id (the next page) or ends before one (the previous page)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import NamedTuple

from users_service.validation import FieldViolation, InvalidArgument

_VERSION = 1
# Tokens this server issues are ~60 characters; anything much longer is not one of them.
MAX_TOKEN = 200
# An id the stores can bind (SQLite and PostgreSQL integers are signed 64-bit).
_MAX_ID = 2**63 - 1


def _filter_hash(username_prefix: str) -> str:
    return hashlib.sha256(username_prefix.encode()).hexdigest()[:16]


class Cursor(NamedTuple):
    """Where a page starts: after `id` (forwards), or it ends before `id` (backwards)."""

    id: int
    backwards: bool = False


def encode_token(after_id: int, username_prefix: str, *, before: bool = False) -> str:
    """A token that resumes after `after_id` (or, with before, ends just before it), valid only
    with the same prefix."""
    key = "before" if before else "after"
    payload = {"v": _VERSION, key: after_id, "filter": _filter_hash(username_prefix)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(token: str, username_prefix: str) -> Cursor:
    """Where the page starts (after 0 for an empty token); InvalidArgument for a bad token."""
    if not token:
        return Cursor(0)
    if len(token) > MAX_TOKEN:
        raise _not_ours()
    try:
        # Defensive: a forged token may nest deeply (RecursionError) or hold any JSON at all.
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        backwards = "before" in payload
        at, issued_for = payload["before" if backwards else "after"], payload["filter"]
        valid = (
            payload["v"] == _VERSION
            and type(at) is int
            and 0 <= at <= _MAX_ID
            and isinstance(issued_for, str)
        )
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        valid = False
    if not valid:
        raise _not_ours()
    if issued_for != _filter_hash(username_prefix):
        raise InvalidArgument(
            [FieldViolation("page_token", "was issued for a different username_prefix")]
        )
    return Cursor(int(at), backwards)


def decode_token(token: str, username_prefix: str) -> int:
    """The id a forward token resumes after (0 for an empty token); InvalidArgument otherwise."""
    cursor = decode_cursor(token, username_prefix)
    if cursor.backwards:
        raise InvalidArgument([FieldViolation("page_token", "is not a forward page token")])
    return cursor.id


def _not_ours() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", "is not a token this server issued")])
