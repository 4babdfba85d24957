"""Fixtures: real in-process servers on port 0 over a real SQLite file or PostgreSQL database,
server subprocesses, and a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import gc
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from plumbing.logs import install_request_id_factory
from testkit.bulk_users import write_users
from testkit.channels import aio_channel
from testkit.processes import LoggedProcess, stopped_at_exit
from testkit.tokens import TestIssuer
from users.v1 import users_pb2_grpc
from users_service.auth_config import AuthSettings, OidcSettings
from users_service.config import Settings
from users_service.server import UsersServer
from users_service.store.sqlite_migrations import apply_migrations

from .pg_server import PostgresServer, find_bindir

ServerFactory = Callable[..., Any]


@pytest.fixture(autouse=True, scope="session")
def _request_ids_in_log_records() -> None:
    """Log records carry the request id of their call, as under `python -m users_service`."""
    install_request_id_factory()


@pytest.fixture(scope="session")
def test_issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    """The tests' operator issuer, which every test server trusts (testkit.tokens)."""
    return TestIssuer(tmp_path_factory.mktemp("issuer"))


def auth_settings(issuer: TestIssuer, **overrides: Any) -> AuthSettings:
    """AuthSettings trusting the tests' issuer and signing with the tests' keys."""
    env = issuer.server_env()
    oidc = OidcSettings(
        issuer=env["USERS_OIDC_ISSUER"],
        audience=env["USERS_OIDC_AUDIENCE"],
        jwks=env["USERS_OIDC_JWKS"],
        role_claim=env["USERS_OIDC_ROLE_CLAIM"],
        algorithms=("EdDSA",),
    )
    # Cheap hashes: tests sign in often; the service's defaults are argon2id at OWASP's figures.
    cheap = {"hash_memory_kib": 8192, "hash_time_cost": 1}
    given = {"signing_keys_dir": issuer.signing_keys_dir, "oidc": oidc, **cheap, **overrides}
    return AuthSettings(**given)


@pytest.fixture
def settings(tmp_path: Path, test_issuer: TestIssuer) -> Settings:
    """Settings for a test server: ephemeral port, a database file in tmp_path, fast probes;
    the tests' issuer trusted (the `channel` fixture carries its admin token)."""
    return Settings(
        listen_address="127.0.0.1:0",
        database_url=f"sqlite:///{tmp_path / 'data' / 'users.db'}",
        grace_period_seconds=1.0,
        store_probe_interval_seconds=0.1,
        auth=auth_settings(test_issuer),
    )


@pytest.fixture(scope="session")
def admin_token(test_issuer: TestIssuer) -> str:
    """An admin token of the tests' issuer: what the shared channels carry by default."""
    return test_issuer.token("admin", ttl=24 * 3600)


@pytest.fixture
async def start_server(settings: Settings) -> AsyncIterator[ServerFactory]:
    """Starts UsersServers (settings overridable per call); drains every one at the end."""
    started: list[UsersServer] = []

    async def start(**overrides: Any) -> tuple[UsersServer, int]:
        server = UsersServer(replace(settings, **overrides))
        port = await server.start()
        started.append(server)
        return server, port

    yield start
    for server in started:
        await server.drain(grace=0)


@pytest.fixture
async def server(start_server: ServerFactory) -> tuple[UsersServer, int]:
    """One started server and its port."""
    started: tuple[UsersServer, int] = await start_server()
    return started


@pytest.fixture
async def channel(server: tuple[UsersServer, int], admin_token: str) -> AsyncIterator[Any]:
    """An aio channel to the server, every call carrying an admin token."""
    async with aio_channel(f"127.0.0.1:{server[1]}", token=admin_token) as chan:
        yield chan


@pytest.fixture
async def anonymous_channel(server: tuple[UsersServer, int]) -> AsyncIterator[Any]:
    """An aio channel to the server that carries no token."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server[1]}") as chan:
        yield chan


@pytest.fixture
def stub(channel: Any) -> Any:
    """A users.v1.UserService stub on the channel."""
    return users_pb2_grpc.UserServiceStub(channel)


LISTENING = re.compile(r'"message": "listening".*"port": (\d+)')


class ServerProcess:
    """`python -m users_service` in a subprocess; its JSON log lines collected as they come.

    `issuer` (the tests' operator issuer) is trusted by the server unless `env` says otherwise.
    """

    def __init__(self, db_path: Path | str, issuer: TestIssuer | None = None, **env: str) -> None:
        full_env = {
            "USERS_LISTEN_ADDRESS": "127.0.0.1:0",
            "USERS_DATABASE_URL": db_path if isinstance(db_path, str) else f"sqlite:///{db_path}",
            **(issuer.server_env() if issuer is not None else {}),
            **env,
        }
        self._logged = LoggedProcess(
            [sys.executable, "-m", "users_service"], full_env, ready_when=LISTENING.search
        )
        self.process = self._logged.proc
        self.lines = self._logged.lines
        started = self._logged.ready.wait(timeout=20)
        listening = LISTENING.search(self._logged.ready_line or "") if started else None
        if listening is None:
            self.process.kill()
            raise RuntimeError(f"server did not start: {self.lines}")
        self.port = int(listening.group(1))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._logged.stop(signal.SIGKILL, timeout=10)

    def wait_for_log(self, pattern: str, timeout: float = 10) -> str:
        return self._logged.wait_for_match(pattern, timeout)


@pytest.fixture
def spawn_server(tmp_path: Path, test_issuer: TestIssuer) -> Iterator[Callable[..., ServerProcess]]:
    """Starts server subprocesses (trusting the tests' issuer); kills any still running at the
    end."""

    def spawn(db_path: Path | str | None = None, **env: str) -> ServerProcess:
        return ServerProcess(db_path or tmp_path / "proc" / "users.db", test_issuer, **env)

    with stopped_at_exit(spawn) as spawn_and_keep:
        yield spawn_and_keep


# The users of `million_users`, ids 1 to MILLION (testkit.bulk_users' usernames).
MILLION = 1_000_000


@pytest.fixture
async def million_users(
    spawn_server: Callable[..., ServerProcess], tmp_path: Path
) -> ServerProcess:
    """A server process on a SQLite file of MILLION users, written straight to it (~12 s)."""
    db = tmp_path / "million" / "users.db"
    await asyncio.to_thread(write_users, db, MILLION, apply_migrations)
    return spawn_server(db)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (Debian's `postgresql` package), always stopped."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL server binaries (initdb, postgres) not found:"
            " run `make system-deps` (it installs Debian's postgresql package)",
            pytrace=False,
        )
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database of its own on the session's PostgreSQL server."""
    name = f"users_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    # A pool closed while it was connecting drops a half-authenticated connection that only the
    # garbage collector closes; its backend would hold DROP DATABASE for authentication_timeout.
    gc.collect()
    postgres_server.drop_database(name)


@dataclass(frozen=True)
class Replica:
    """One users server, and a channel and UserService stub to it."""

    server: UsersServer
    channel: Any
    stub: Any


@pytest.fixture
async def replicas(
    start_server: ServerFactory, postgres_url: str, admin_token: str
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two in-process users servers (each its own pool and LISTEN connection) on one database."""
    started: list[Replica] = []
    for _ in range(2):
        server, port = await start_server(database_url=postgres_url)
        channel = aio_channel(f"127.0.0.1:{port}", token=admin_token)
        started.append(Replica(server, channel, users_pb2_grpc.UserServiceStub(channel)))
    yield started[0], started[1]
    for replica in started:
        await replica.channel.close()
