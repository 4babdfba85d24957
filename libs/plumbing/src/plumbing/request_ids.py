"""Request ids: the caller's if well formed, else a fresh one; the current one in a contextvar."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

# The gRPC metadata key and the HTTP header (lowercase, as both carry it on the wire).
REQUEST_ID_KEY = "x-request-id"
MAX_LENGTH = 128
_WELL_FORMED = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")

# The request id of the call or request being served; "" outside one (never a valid id). Each
# call runs in its own task, hence its own copy of the context: setting it never leaks.
request_id_var: ContextVar[str] = ContextVar("request_id", default="")

# Ids need to be unique, not unguessable: a seeded generator draws one without the getrandom()
# system call uuid4 makes each time. Reseeded in a forked child, so two processes never share ids.
_ids = random.Random()  # noqa: S311 - not a secret
os.register_at_fork(after_in_child=_ids.seed)


def well_formed(value: str) -> bool:
    """Whether `value` may be used as a request id: 1-128 of A-Z a-z 0-9 . _ : -, nothing else."""
    return _WELL_FORMED.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh request id: 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


def from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The first well-formed x-request-id in gRPC metadata; a fresh id if there is none."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _WELL_FORMED.fullmatch(value):
            return value
    return new_request_id()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """The current request id as gRPC metadata, to pass it on; none outside a request."""
    request_id = request_id_var.get()
    return ((REQUEST_ID_KEY, request_id),) if request_id else ()
