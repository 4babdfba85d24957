"""Waiting with a deadline: for a condition, a TCP port that accepts, a gRPC health status."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from testkit.ports import LOOPBACK

T = TypeVar("T")


def wait_until(
    found: Callable[[], T | None],
    timeout: float,
    failure: Callable[[], str],
    interval: float = 0.02,
) -> T:
    """The first value of `found()` that is not None, asked every `interval` seconds.

    Raises AssertionError with `failure()` as its message after `timeout` seconds.

    Example:
        >>> wait_until(lambda: "ready", timeout=1, failure=lambda: "never ready")
        'ready'
    """
    deadline = time.monotonic() + timeout
    while (value := found()) is None:
        if time.monotonic() >= deadline:
            raise AssertionError(failure())
        time.sleep(interval)
    return value


def wait_for_port(
    port: int,
    timeout: float,
    host: str = LOOPBACK,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """True once a TCP connection to host:port succeeds; False after `timeout` seconds, or as
    soon as `alive()` is false (the server that was to listen has exited).

    Example:
        >>> wait_for_port(free_port(), timeout=0.2)  # doctest: +SKIP
        False
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return True
    return False


def wait_for_serving(target: str, service: str, timeout: float) -> bool:
    """True once the gRPC health service at `target` reports `service` SERVING.

    A health Watch with wait_for_ready: it waits for the server to listen, then streams the
    statuses. False if the server ends the stream first; grpc.RpcError (DEADLINE_EXCEEDED)
    after `timeout` seconds.

    Example:
        >>> assert wait_for_serving("127.0.0.1:50051", "users.v1.UserService", 20)  # doctest: +SKIP
    """
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        watch = stub.Watch(request, timeout=timeout, wait_for_ready=True)
        for reply in watch:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                watch.cancel()
                return True
    return False


async def wait_for_status(watch: Any, wanted: int, within: float = 10) -> None:
    """Reads a grpc.aio health Watch until it reports `wanted`; TimeoutError after `within` s.

    Example:
        >>> watch = health_pb2_grpc.HealthStub(channel).Watch(request)  # doctest: +SKIP
        >>> await wait_for_status(watch, health_pb2.HealthCheckResponse.NOT_SERVING)
    """

    async def read_until() -> None:
        while (await watch.read()).status != wanted:
            pass

    await asyncio.wait_for(read_until(), within)
