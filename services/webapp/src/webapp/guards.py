"""Guards on what one client may hold or do: event-stream slots, a write rate per address."""

from __future__ import annotations

from plumbing.rate_limits import Rate, RateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

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
    """ASGI middleware: writes beyond a client address's rate get 429 with Retry-After.

    The client is the TCP peer (the webapp reads no X-Forwarded-For: proxy_headers is off).
    """

    def __init__(self, app: ASGIApp, rate: Rate) -> None:
        self.app = app
        self._limiter = RateLimiter(rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            client = scope.get("client")
            wait = self._limiter.take(client[0] if client else "")
            if wait:
                detail = f"too many writes from this address: retry after {wait} s"
                response = problem(429, detail, headers={"Retry-After": str(wait)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
