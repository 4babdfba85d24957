"""Health: the library's servicer (drainable Watch) and a periodic store probe that drives it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from users.v1 import users_pb2

from users_service.limits import DiskReserve
from users_service.store import StoreUnavailable, UserStore

logger = logging.getLogger(__name__)

SERVICE_NAME: str = users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Whether writes are accepted: NOT_SERVING while the disk is down to its reserve, when the
# service itself stays SERVING for reads (docs/limits.md).
WRITES_SERVICE_NAME = f"{SERVICE_NAME}:writes"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DrainableHealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """grpc_health's asyncio servicer whose Watch streams end when the server drains.

    An open Watch would otherwise hold `server.stop(grace)` for the whole grace period.

    Example:
        >>> health = DrainableHealthServicer()
        >>> await health.drain()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        super().__init__()
        self._drained = asyncio.Event()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        watch = asyncio.ensure_future(super().Watch(request, context))
        drained = asyncio.ensure_future(self._drained.wait())
        try:
            done, _ = await asyncio.wait({watch, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            drained.cancel()
        if watch in done:
            watch.result()

    def status(self, service: str) -> int | None:
        """The status last set for `service` (a ServingStatus value), None if never set."""
        return self._server_status.get(service)  # type: ignore[no-any-return]

    async def drain(self) -> None:
        """Sets every service NOT_SERVING for good, then ends the open Watch streams."""
        await self.enter_graceful_shutdown()
        # Let the woken Watch streams send NOT_SERVING before they are ended.
        await asyncio.sleep(0.1)
        self._drained.set()


class StoreMonitor:
    """Probes the store every `interval` seconds and sets users.v1.UserService accordingly.

    Liveness (the overall "" status) never depends on the store.
    """

    def __init__(
        self,
        store: UserStore,
        health: DrainableHealthServicer,
        interval: float,
        reserve: DiskReserve | None = None,
    ) -> None:
        self._store = store
        self._health = health
        self._interval = interval
        self._reserve = reserve
        self._status: int | None = None
        self._writes: int | None = None

    async def check_once(self) -> None:
        """One probe; logs and publishes a change of status."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for drops a cancellation that
            # lands as the probe completes, and the drain then waits for this task forever.
            writable = await self._check_writes()
            async with asyncio.timeout(max(self._interval, 1.0)):
                await self._store.probe(write=writable)
        except (StoreUnavailable, TimeoutError) as error:
            status, reason = NOT_SERVING, str(error) or "store probe timed out"
        else:
            status, reason = SERVING, "store probe ok"
        if status != self._status:
            log = logger.info if status == SERVING else logger.warning
            log(
                "%s is %s: %s",
                SERVICE_NAME,
                health_pb2.HealthCheckResponse.ServingStatus.Name(status),
                reason,
            )
            self._status = status
        await self._health.set(SERVICE_NAME, status)

    async def _check_writes(self) -> bool:
        """Publishes whether writes are accepted (the disk reserve); True when they are."""
        writable = self._reserve is None or not self._reserve.low(fresh=True)
        status = SERVING if writable else NOT_SERVING
        if status != self._writes:
            if self._writes is not None or not writable:
                log = logger.info if writable else logger.warning
                log("writes are %s: the disk reserve", "accepted" if writable else "refused")
            self._writes = status
            await self._health.set(WRITES_SERVICE_NAME, status)
        return writable

    async def run(self) -> None:
        """Probes until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(self._interval)
