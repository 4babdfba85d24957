"""Guards on what one client may hold or do: event-stream slots, a write rate per address."""

from __future__ import annotations

from plumbing.rate_limits import Rate, RateLimiter
from starlette.responses import Response
from starlette.types import Scope

from webapp.errors import problem

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Slots:
    """A fixed number of slots (open event streams).

    Example:
        >>> slots = Slots(1)
        >>> slots.acquire(), slots.acquire()
        (True, False)
        >>> slots.release()
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0

    def acquire(self) -> bool:
        """Takes a slot; False when all are in use."""
        if self.in_use >= self.size:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        """Gives a slot back."""
        self.in_use = max(0, self.in_use - 1)


class WriteRateLimit:
    """Writes beyond a client address's rate get 429 with Retry-After.

    Checked by the request middleware (middleware.py) rather than as a middleware layer of its
    own: a layer costs every request a call, reads included (docs/performance.md). The client is
    the TCP peer (the webapp reads no X-Forwarded-For: proxy_headers is off).
    """

    def __init__(self, rate: Rate) -> None:
        self._limiter = RateLimiter(rate)

    def refusal(self, scope: Scope) -> Response | None:
        """The 429 for a write over its address's rate; None for a read or an allowed write."""
        if scope["method"] not in WRITE_METHODS:
            return None
        client = scope.get("client")
        wait = self._limiter.take(client[0] if client else "")
        if not wait:
            return None
        detail = f"too many writes from this address: retry after {wait} s"
        return problem(429, detail, headers={"Retry-After": str(wait)})
