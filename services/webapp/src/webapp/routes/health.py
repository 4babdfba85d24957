"""/healthz (the process serves) and /readyz (the users service answers its health check)."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from webapp.errors import problem
from webapp.gateway import HealthReport, UsersGateway
from webapp.routes.deps import users_gateway

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0
# With metrics on, how often readiness is checked for the userstack_webapp_ready gauge even when
# nobody asks /readyz (compose's healthcheck asks /healthz only).
WATCH_SECONDS = 5.0


class Readiness:
    """Asks the users service's health service, at most once per CACHE_SECONDS.

    >>> ready, reason = await Readiness().check(gateway)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._report: HealthReport | None = None
        self._at = 0.0
        self.ready = False  # the last answer (the metric userstack_webapp_ready)
        self._lock = asyncio.Lock()

    async def check(self, gateway: UsersGateway) -> tuple[bool, str]:
        """(ready, reason), from the cache when it is fresh."""
        async with self._lock:
            report = self._report
            if report is None or time.monotonic() - self._at >= CACHE_SECONDS:
                report = await gateway.check_health(CHECK_TIMEOUT_SECONDS)
                if report.conclusive:
                    self._report, self._at = report, time.monotonic()
            self.ready = report.ready
            return report.ready, report.reason


async def keep_checking(readiness: Readiness, gateway: UsersGateway) -> None:
    """Checks readiness every WATCH_SECONDS until cancelled (one health Check each)."""
    while True:
        try:
            await readiness.check(gateway)
        except Exception:  # a failed check must not end the watch: logged, tried again
            logger.exception("readiness check failed")
        await asyncio.sleep(WATCH_SECONDS)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready, with the reason."}})
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the users service reports SERVING.

    Checked with a 1 s deadline (less when X-Request-Timeout leaves less), cached for 1 s.
    """
    readiness: Readiness = request.app.state.readiness
    ready, reason = await readiness.check(users_gateway(request))
    if not ready:
        logger.info("not ready: %s", reason)
        return problem(503, reason, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "reason": reason})
