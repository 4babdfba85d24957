"""The request's time budget: its own deadline, in a contextvar (request ids: plumbing)."""

from __future__ import annotations

import time
from contextvars import ContextVar

# A caller's time budget for the whole HTTP request, in seconds (like gRPC's grpc-timeout).
REQUEST_TIMEOUT_HEADER = "x-request-timeout"

# time.monotonic() value after which the caller no longer waits; None when it set no budget.
request_deadline_var: ContextVar[float | None] = ContextVar("request_deadline", default=None)


class DeadlineSpentError(Exception):
    """The HTTP request's own time budget ran out before its backend call could start or end."""


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
