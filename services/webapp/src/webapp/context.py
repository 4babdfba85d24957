"""Per-request context: the request id and the HTTP request's own deadline, in contextvars."""

from __future__ import annotations

import random
import re
import time
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
# A caller's time budget for the whole HTTP request, in seconds (like gRPC's grpc-timeout).
REQUEST_TIMEOUT_HEADER = "x-request-timeout"

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# time.monotonic() value after which the caller no longer waits; None when it set no budget.
request_deadline_var: ContextVar[float | None] = ContextVar("request_deadline", default=None)


class DeadlineSpentError(Exception):
    """The HTTP request's own time budget ran out before its backend call could start or end."""


def accept_request_id(raw: str | None) -> str:
    """Returns the caller's request id when it is well-formed, else a fresh one."""
    if raw and _REQUEST_ID_RE.match(raw):
        return raw
    # Unique, not secret: the os.urandom() behind uuid4 is a system call for every request.
    return f"{random.getrandbits(128):032x}"


def parse_request_timeout(raw: str | None) -> float | None:
    """Turns an X-Request-Timeout header (seconds) into a monotonic deadline; ValueError if bad."""
    if raw is None:
        return None
    seconds = float(raw)
    if not 0 < seconds < 86400:
        raise ValueError("X-Request-Timeout must be a number of seconds between 0 and 86400")
    return time.monotonic() + seconds


def remaining_budget(limit: float) -> float:
    """Seconds a backend call may take: `limit`, never more than the request has left."""
    deadline = request_deadline_var.get()
    if deadline is None:
        return limit
    return min(limit, deadline - time.monotonic())
