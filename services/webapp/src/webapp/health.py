"""/healthz (the process serves) and /readyz (the users service answers its health check)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2

from webapp.deps import users_client
from webapp.errors import problem
from webapp.grpc_client import USERS_SERVICE, UsersClient

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 1.0


@dataclasses.dataclass
class _Verdict:
    ready: bool
    reason: str
    cacheable: bool = True
    at: float = dataclasses.field(default_factory=time.monotonic)


class Readiness:
    """Asks the users service's gRPC health service, at most once per CACHE_SECONDS.

    >>> ready, reason = await Readiness().check(client)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._verdict: _Verdict | None = None
        self._lock = asyncio.Lock()

    async def check(self, client: UsersClient) -> tuple[bool, str]:
        """(ready, reason), from the cache when it is fresh."""
        async with self._lock:
            verdict = self._verdict
            if verdict is None or time.monotonic() - verdict.at >= CACHE_SECONDS:
                verdict = await self._ask(client)
                if verdict.cacheable:
                    self._verdict = verdict
            return verdict.ready, verdict.reason

    async def _ask(self, client: UsersClient) -> _Verdict:
        if client.stopping.is_set():
            return _Verdict(False, "the webapp is shutting down")
        request = health_pb2.HealthCheckRequest(service=USERS_SERVICE)
        options = client.options(CHECK_TIMEOUT_SECONDS)  # less when the request has less left
        try:
            reply = await client.health.Check(request, **options)
        except grpc.aio.AioRpcError as exc:
            reason = f"users service health check failed: {exc.code().name}"
            # A check cut short by this request's own budget says nothing for other callers.
            cut_short = options["timeout"] < CHECK_TIMEOUT_SECONDS
            timed_out = exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            return _Verdict(False, reason, cacheable=not (cut_short and timed_out))
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        reason = f"users service is {status}"
        return _Verdict(reply.status == health_pb2.HealthCheckResponse.SERVING, reason)


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
    ready, reason = await readiness.check(users_client(request))
    if not ready:
        logger.info("not ready: %s", reason)
        return problem(503, reason, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "reason": reason})
