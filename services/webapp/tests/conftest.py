"""Fixtures: a real users service and a real webapp, each a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from testkit.ports import free_port
from testkit.processes import LoggedProcess, stopped_at_exit
from testkit.waiting import wait_for_port, wait_for_serving
from webapp.app import create_app
from webapp.config import Settings

SECRET_KEY = secrets.token_urlsafe(32)
START_TIMEOUT = 20.0


def unique(prefix: str) -> str:
    """A username no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class UsersService:
    """`python -m users_service` on 127.0.0.1:<port> with its database under `directory`."""

    def __init__(self, directory: Path, port: int | None = None, **env: str) -> None:
        self.directory = directory
        self.env = env
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: LoggedProcess | None = None

    def start(self) -> UsersService:
        env = {
            "USERS_LISTEN_ADDRESS": self.address,
            "USERS_DATABASE_URL": f"sqlite:///{self.directory / 'users.db'}",
            "USERS_GRACE_PERIOD_SECONDS": "2",
            **self.env,
        }
        self.process = LoggedProcess([sys.executable, "-m", "users_service"], env)
        if not wait_for_serving(self.address, "users.v1.UserService", START_TIMEOUT):
            raise RuntimeError(f"users service never became SERVING:\n{self.log()}")
        return self

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
        self.process = LoggedProcess([sys.executable, "-m", "webapp"], self.env)
        # Accepting, not "Application startup complete": uvicorn logs that before it binds.
        if not wait_for_port(self.port, START_TIMEOUT, alive=self.process.running):
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
    """Starts private users services (stopped at teardown): spawn_users(port=None, **env)."""

    def spawn(port: int | None = None, **env: str) -> UsersService:
        return UsersService(tmp_path, port, **env).start()

    with stopped_at_exit(spawn) as spawn_and_keep:
        yield spawn_and_keep


@pytest.fixture
def spawn_webapp() -> Iterator[Callable[..., Webapp]]:
    """Starts private webapps (stopped at teardown): spawn_webapp(users_target, **env)."""
    with stopped_at_exit(Webapp) as spawn:
        yield spawn


@pytest.fixture
def own_stack(
    spawn_users: Callable[..., UsersService], spawn_webapp: Callable[..., Webapp]
) -> tuple[UsersService, Webapp]:
    """A users service of the test's own and a webapp in front of it (stopped at teardown)."""
    users = spawn_users()
    return users, spawn_webapp(users.address)


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
