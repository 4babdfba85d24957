"""Fixtures: a real users service and a real webapp, each a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from webapp.app import create_app
from webapp.config import Settings

SECRET_KEY = secrets.token_urlsafe(32)
START_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    """A username no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Process:
    """A child process whose stderr lines are collected by a thread; `ready` fires on a marker."""

    def __init__(self, args: list[str], env: dict[str, str], marker: str | None) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._marker = marker
        self.proc = subprocess.Popen(
            args, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if self._marker is not None and self._marker in line:
                self.ready.set()
        self.ready.set()  # the process ended: nobody waits forever

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, *parts: str, timeout: float = 5.0) -> str:
        """The first line containing every part, waiting for the reader thread (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.lines if all(p in line for p in parts)), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"no line with {parts} in:\n{self.log()}"
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


class UsersService:
    """`python -m users_service` on 127.0.0.1:<port> with its database under `directory`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: Process | None = None

    def start(self) -> UsersService:
        env = {
            "USERS_LISTEN_ADDRESS": self.address,
            "USERS_DATABASE_URL": f"sqlite:///{self.directory / 'users.db'}",
            "USERS_GRACE_PERIOD_SECONDS": "2",
        }
        self.process = Process([sys.executable, "-m", "users_service"], env, marker=None)
        self._wait_serving()
        return self

    def _wait_serving(self) -> None:
        # Health Watch with wait_for_ready: blocks until the server listens, then streams statuses.
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="users.v1.UserService")
            watch = stub.Watch(request, timeout=START_TIMEOUT, wait_for_ready=True)
            for reply in watch:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    watch.cancel()
                    return
        raise RuntimeError(f"users service never became SERVING:\n{self.log()}")

    def log(self) -> str:
        return self.process.log() if self.process else ""

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """The process frozen (SIGSTOP): its connections stay open, and nothing answers."""
        assert self.process is not None
        os.kill(self.process.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Webapp:
    """`python -m webapp` on 127.0.0.1:<port> against `users_target`."""

    def __init__(self, users_target: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "WEBAPP_USERS_TARGET": users_target,
            "WEBAPP_HOST": "127.0.0.1",
            "WEBAPP_PORT": str(self.port),
            "WEBAPP_SECRET_KEY": SECRET_KEY,
            "WEBAPP_SHUTDOWN_GRACE_SECONDS": "5",
            **env,
        }
        self.process = Process(
            [sys.executable, "-m", "webapp"], self.env, marker="Application startup complete"
        )
        if not self.process.ready.wait(START_TIMEOUT) or self.process.proc.poll() is not None:
            raise RuntimeError(f"webapp did not start:\n{self.process.log()}")

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def stop(self) -> int:
        return self.process.stop()


@pytest.fixture(scope="session")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersService]:
    """One users service for the tests that share it (each test uses its own usernames)."""
    service = UsersService(tmp_path_factory.mktemp("users")).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def webapp(users: UsersService) -> Iterator[Webapp]:
    """One webapp in front of the shared users service."""
    app = Webapp(users.address)
    yield app
    app.stop()


@pytest.fixture
async def http(webapp: Webapp) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the shared webapp."""
    async with httpx.AsyncClient(base_url=webapp.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def uname() -> Callable[[str], str]:
    """Makes usernames no other test uses."""
    return unique


@pytest.fixture
def make_user(http: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Creates a user through the API and returns its JSON."""

    async def make(prefix: str = "u", **fields: str) -> dict[str, Any]:
        response = await http.post("/api/v1/users", json={"username": unique(prefix), **fields})
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        return user

    return make


@pytest.fixture
def spawn_users(tmp_path: Path) -> Iterator[Callable[..., UsersService]]:
    """Starts private users services (stopped at teardown): spawn_users(port=None)."""
    started: list[UsersService] = []

    def spawn(port: int | None = None) -> UsersService:
        service = UsersService(tmp_path, port).start()
        started.append(service)
        return service

    yield spawn
    for service in started:
        service.stop()


@pytest.fixture
def spawn_webapp() -> Iterator[Callable[..., Webapp]]:
    """Starts private webapps (stopped at teardown): spawn_webapp(users_target, **env)."""
    started: list[Webapp] = []

    def spawn(users_target: str, **env: str) -> Webapp:
        app = Webapp(users_target, **env)
        started.append(app)
        return app

    yield spawn
    for app in started:
        app.stop()


InProcess = Callable[[str], Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
async def in_process() -> AsyncIterator[InProcess]:
    """Runs the real app in this process (lifespan included) against `users_target`: (app, client).

    For what needs no running users service, or a route added by the test; errors come back as
    responses, as from uvicorn.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def serve(users_target: str) -> tuple[FastAPI, httpx.AsyncClient]:
            app = create_app(Settings(secret_key=SECRET_KEY, users_target=users_target))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = httpx.AsyncClient(transport=transport, base_url="http://webapp")
            return app, await stack.enter_async_context(client)

        yield serve
