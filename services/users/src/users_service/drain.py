"""The drain's lame duck: API calls held at the gate, refused once clients have seen the GOAWAY.

Why hold them rather than answer at once: grpc core cancels every call it has received but not
yet handed to the application when `server.stop()` runs (the client sees CANCELLED and cannot
tell whether its call ran: grpc/grpc#41785), and the calls that reach it after the stop but
before the client has read the GOAWAY the same way. A busy client keeps that queue full: each
refusal frees a slot that a new call fills at once. A held call keeps its slot, so the client's
calls stop coming; once nothing has arrived or been answered for QUIET_SECONDS, the queue is
empty, the server stops (the GOAWAY goes out first), and only then are the held calls refused
with UNAVAILABLE (safe to retry: their handlers never ran), after the GOAWAY on the same
connection, so that the client's next calls go elsewhere. Figures: docs/operations.md, Drain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NoReturn

from users_service.lifecycle import ShuttingDown

logger = logging.getLogger(__name__)

# Nothing arrived or answered for this long (counted in polls of the running event loop, so a
# loop that was not scheduled does not count it as quiet): the clients are not sending, and grpc
# core holds no call the application has not taken.
QUIET_SECONDS = 0.2
POLL_SECONDS = 0.01
# Between stop() (which queues the GOAWAY on every connection) and the refusals.
GOAWAY_HEAD_START_SECONDS = 0.05


class LameDuck:
    """The gate every API call passes: open while serving; once closed, each new call is held,
    then refused with UNAVAILABLE ("the server is draining: retry elsewhere") after the stop.

    Example:
        >>> gate = LameDuck()  # a handler awaits gate.refuse() once gate.closed
        >>> stopping = await gate.stop(server, grace=10, within=1)  # doctest: +SKIP
        >>> await stopping  # the calls in flight are done (or the grace is spent)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.closed = False  # read on every API call: a plain attribute
        self.held = 0  # calls held so far
        self._activity = 0  # calls arrived or answered since the gate closed
        self._released = asyncio.Event()

    async def refuse(self) -> NoReturn:
        """Holds the calling call until the server has stopped, then raises ShuttingDown."""
        self.held += 1
        self._activity += 1
        await self._released.wait()
        raise ShuttingDown("the server is draining: retry elsewhere")

    def answered(self) -> None:
        """An API call ended while the gate is closed: its client may send another."""
        self._activity += 1

    async def wait_quiet(self, within: float) -> bool:
        """Waits until nothing arrives or is answered for QUIET_SECONDS (True), at most
        `within` seconds (False)."""
        deadline = time.monotonic() + within
        seen, quiet_polls = self._activity, 0
        while quiet_polls * POLL_SECONDS < QUIET_SECONDS:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
            quiet_polls = quiet_polls + 1 if self._activity == seen else 0
            seen = self._activity
        return True

    async def stop(self, server: Any, grace: float, within: float) -> asyncio.Future[None]:
        """Closes the gate, waits for quiet (at most `within`), starts `server.stop(grace)` and
        refuses the held calls; returns the stop, done when the calls in flight are."""
        self.closed = True
        closed_at = time.monotonic()
        try:
            quiet = await self.wait_quiet(within)
            logger.info(
                "stopping",
                extra={
                    "held_calls": self.held,
                    "quiet": quiet,
                    "lame_duck_seconds": round(time.monotonic() - closed_at, 3),
                },
            )
            stopping: asyncio.Future[None] = asyncio.ensure_future(server.stop(grace))
            # Let stop() begin: its first, synchronous step shuts grpc core down, which queues
            # the GOAWAY on every connection. The head start then only covers grpc core's own
            # threads writing it: refusals sent after it reach each client after its GOAWAY, so
            # the client's next calls go elsewhere.
            await asyncio.sleep(0)
            await asyncio.sleep(GOAWAY_HEAD_START_SECONDS)
        finally:
            # Even if the drain itself is cancelled: a held call must never wait forever.
            self._released.set()
        return stopping
