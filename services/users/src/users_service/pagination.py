"""Opaque ListUsers page tokens, bound to the filter they were issued for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from users_service.validation import FieldViolation, InvalidArgument

_VERSION = 1
# Tokens this server issues are ~60 characters; anything much longer is not one of them.
MAX_TOKEN = 200
# An id the stores can bind (SQLite and PostgreSQL integers are signed 64-bit).
_MAX_ID = 2**63 - 1


def _filter_hash(username_prefix: str) -> str:
    return hashlib.sha256(username_prefix.encode()).hexdigest()[:16]


def encode_token(after_id: int, username_prefix: str) -> str:
    """A token that resumes after `after_id`, valid only with the same prefix."""
    payload = {"v": _VERSION, "after": after_id, "filter": _filter_hash(username_prefix)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_token(token: str, username_prefix: str) -> int:
    """The id to resume after (0 for an empty token); raises InvalidArgument for a bad token."""
    if not token:
        return 0
    if len(token) > MAX_TOKEN:
        raise _not_ours()
    try:
        # Defensive: a forged token may nest deeply (RecursionError) or hold any JSON at all.
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        after, issued_for = payload["after"], payload["filter"]
        valid = (
            payload["v"] == _VERSION
            and type(after) is int
            and 0 <= after <= _MAX_ID
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
    return int(after)


def _not_ours() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", "is not a token this server issued")])
