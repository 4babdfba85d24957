"""Fixtures: a real users service and a real webapp, each a subprocess on a free loopback port."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from testkit.ports import free_port
from testkit.processes import LoggedProcess, stopped_at_exit
from testkit.tokens import TestIssuer
from testkit.waiting import wait_for_port, wait_for_serving
from webapp.app import create_app
from webapp.config import Settings

SECRET_KEY = secrets.token_urlsafe(32)
START_TIMEOUT = 20.0
# Every users service the tests start has self-service sign-up open and trusts the tests' own
# operator issuer (testkit.tokens); they all sign with one key directory too, so a token stays valid
# across replicas and restarts. The shared clients (`http`, `in_process`, Webapp.client()) carry
# the issuer's admin token, so tests written before access control keep their meaning (and their
# empty databases: no account is made for it); tests of access itself sign members up, or call
# anonymously. ADMIN_ENV adds a first admin account, for the tests that sign in as one.
_ISSUER_DIR = Path(tempfile.mkdtemp(prefix="webapp-tests-issuer-"))
atexit.register(shutil.rmtree, _ISSUER_DIR, True)
ISSUER = TestIssuer(_ISSUER_DIR)
ADMIN = "admin"
ADMIN_PASSWORD = secrets.token_urlsafe(18)
ADMIN_ENV = {"USERS_ADMIN_USERNAME": ADMIN, "USERS_ADMIN_PASSWORD": ADMIN_PASSWORD}
AUTH_ENV = {
    **ISSUER.server_env(),
    "USERS_SIGNUP_OPEN": "true",
    "USERS_TOKEN_TTL_SECONDS": "7200",  # outlives a test session
    # Cheap password hashes: the tests sign in and up often, and measure nothing of argon2.
    "USERS_HASH_MEMORY_KIB": "8192",
    "USERS_HASH_TIME_COST": "1",
}
PASSWORD = secrets.token_urlsafe(16)  # the members the tests sign up
ADMIN_TOKEN = ISSUER.token("admin", ttl=24 * 3600)
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def unique(prefix: str) -> str:
    """A username no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class UsersService:
    """`python -m users_service` on 127.0.0.1:<port> with its database under `directory`; `env`
    adds or overrides USERS_* variables."""

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
            **AUTH_ENV,
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

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops it: SIGTERM drains; SIGKILL is a crash, gone at once."""
        if self.process is not None:
            self.process.stop(sig)


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

    def sign_in(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        """An access token from the users service, through the webapp's sign-in endpoint."""
        body = {"username": username, "password": password}
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the webapp's channel may still be connecting: 503 until it is up
            response = httpx.post(f"{self.url}/api/v1/auth/signin", json=body, timeout=10)
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def wait_ready(self) -> None:
        """Returns once /readyz says the users service answers (its channel is up)."""
        deadline = time.monotonic() + START_TIMEOUT
        while httpx.get(f"{self.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, f"never ready:\n{self.process.log()}"
            time.sleep(0.1)

    def sign_up(self, username: str, **fields: str) -> tuple[dict[str, Any], str]:
        """A new member account (password PASSWORD) and its token, through the webapp."""
        body = {"username": username, "password": PASSWORD, **fields}
        response = httpx.post(f"{self.url}/api/v1/auth/signup", json=body, timeout=10)
        assert response.status_code == 201, response.text
        answer = response.json()
        return answer["user"], answer["access_token"]

    def client(self, token: str | None = "", **options: Any) -> httpx.AsyncClient:
        """An HTTP client of this webapp carrying `token` (default: ADMIN_TOKEN; None: none)."""
        token = ADMIN_TOKEN if token == "" else token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, **options)

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
    """An HTTP client of the shared webapp, signed in as the admin."""
    async with webapp.client(timeout=10.0) as client:
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
    """Runs the real app in this process (lifespan included) against `users_target`: (app, client
    carrying the admin token).

    For what needs no running users service, or a route added by the test; errors come back as
    responses, as from uvicorn.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def serve(users_target: str) -> tuple[FastAPI, httpx.AsyncClient]:
            app = create_app(Settings(secret_key=SECRET_KEY, users_target=users_target))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = httpx.AsyncClient(
                transport=transport, base_url="http://localhost", headers=ADMIN_HEADERS
            )
            return app, await stack.enter_async_context(client)

        yield serve
