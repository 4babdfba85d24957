"""Health: liveness, the store probe flipping users.v1.UserService on real faults, the CLI probe."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.channels import aio_channel
from testkit.waiting import wait_for_status
from users.v1 import users_pb2, users_pb2_grpc
from users_service.database_url import sqlite_path
from users_service.health import DrainableHealthServicer, StoreMonitor
from users_service.limits import Limits
from users_service.server import UsersServer
from users_service.store.sqlite import SqliteUserStore

SERVICE = "users.v1.UserService"
WRITES = "users.v1.UserService:writes"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: Any, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return int(reply.status)


class _CancelledAsItProbes(SqliteUserStore):
    """The real store; each probe ends by cancelling `victim`, as a drain's cancel might land."""

    victim: asyncio.Task[None] | None = None

    async def probe(self, *, write: bool = True) -> None:
        await super().probe(write=write)
        if self.victim is not None:
            self.victim.cancel()


async def test_the_store_monitor_stops_when_cancelled_as_a_probe_completes(tmp_path: Path) -> None:
    """A drain cancels the monitor and waits for it: a lost cancellation hangs the drain.

    Python 3.11's asyncio.wait_for returns the result, dropping the cancellation, when the
    awaited probe is done by the time the cancelled task resumes.
    """
    store = _CancelledAsItProbes(tmp_path / "users.db")
    await store.open()
    task = store.victim = asyncio.create_task(
        StoreMonitor(store, DrainableHealthServicer(), interval=60).run()
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the monitor ignored its cancellation"
    finally:
        store.victim = None
        task.cancel()
        await store.close()


async def test_liveness_and_service_are_serving(channel: Any) -> None:
    assert await check(channel, "") == SERVING
    assert await check(channel, SERVICE) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(channel, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_service_goes_not_serving_while_the_database_file_is_unreadable_and_back(
    channel: Any, server: tuple[UsersServer, int]
) -> None:
    db = sqlite_path(server[0].settings.database_url)
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=SERVICE)
    )
    await wait_for_status(watch, SERVING)
    # The fault: the database file vanishes and a directory stands where it was (a volume
    # swapped or mis-mounted); nothing can open it as a database, root or not.
    moved = db.with_name("users.db.moved")
    db.rename(moved)
    db.mkdir()
    await wait_for_status(watch, NOT_SERVING)
    assert await check(channel, "") == SERVING, "liveness must not depend on the database"
    db.rmdir()
    moved.rename(db)
    await wait_for_status(watch, SERVING)
    watch.cancel()


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted in tmp_path (needs root: CAP_SYS_ADMIN), unmounted afterwards."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory: Path) -> Path:
    """Writes a file until the filesystem is full; returns it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left on device"):  # noqa: PT012 - a loop
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    return filler


async def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(
    tiny_filesystem: Path, start_server: Any, admin_token: str
) -> None:
    """The disk-full drill: writes RESOURCE_EXHAUSTED (users-limit: storage), reads served, the
    service SERVING and its `:writes` status NOT_SERVING; all back once space returns."""
    url = f"sqlite:///{tiny_filesystem / 'users.db'}"
    _, port = await start_server(database_url=url, limits=Limits(disk_reserve_bytes=512 * 1024))
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        writes = health.Watch(health_pb2.HealthCheckRequest(service=WRITES))
        await wait_for_status(writes, SERVING)
        kept = await stub.CreateUser(users_pb2.CreateUserRequest(username="before"))
        filler = fill(tiny_filesystem)
        await wait_for_status(writes, NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateUser(users_pb2.CreateUserRequest(username="nospace"))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.trailing_metadata()["users-limit"] == "storage"
        assert (await stub.GetUser(users_pb2.GetUserRequest(id=kept.id))).username == "before"
        await asyncio.sleep(0.3)  # a few probe intervals on the full disk
        assert await check(channel, SERVICE) == SERVING
        filler.unlink()
        await wait_for_status(writes, SERVING)
        assert (await stub.CreateUser(users_pb2.CreateUserRequest(username="space"))).id
        writes.cancel()


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("users-healthcheck", path=str(Path(sys.executable).parent))
    assert script is not None, "the users-healthcheck console script is not installed"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.slow
async def test_healthcheck_cli_exits_0_only_when_serving(server: tuple[UsersServer, int]) -> None:
    address = f"127.0.0.1:{server[1]}"
    ok = await asyncio.to_thread(healthcheck, "--address", address, "--service", SERVICE)
    assert ok.returncode == 0, ok.stderr
    assert "SERVING" in ok.stdout
    unknown = await asyncio.to_thread(healthcheck, "--address", address, "--service", "nope")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr
    await server[0].health.drain()
    draining = await asyncio.to_thread(healthcheck, "--address", address)
    assert draining.returncode == 1
    assert "NOT_SERVING" in draining.stderr


@pytest.mark.slow
def test_healthcheck_cli_exits_1_when_nothing_listens() -> None:
    result = healthcheck("--address", "127.0.0.1:1", "--timeout", "1")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
