"""The servers of one bench run: ours (users service, webapp) and the peers, each on its core."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from testkit.certs import CertificateAuthority
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import seeded_username
from scripts.bench.procs import Server

_PEERS = "scripts.bench.peers."


def database_env(path: Path) -> dict[str, str]:
    """How the users service is told where its SQLite file is."""
    return {"USERS_DATABASE_URL": f"sqlite:///{path}"}


@dataclass(frozen=True)
class Cores:
    """Where things run: servers on one core; load and the webapp's backend on the other."""

    server: str | None
    load: str | None

    @classmethod
    def split(cls, pin: bool) -> Cores:
        return cls("0", "1") if pin else cls(None, None)


class Stack:
    """Starts every server of the run, gives them by name, stops them all.

    Example:
        >>> with Stack(workdir, cores, stream_users=100_000) as stack:  # doctest: +SKIP
        ...     stack["users"].port
    """

    def __init__(self, workdir: Path, cores: Cores, stream_users: int) -> None:
        self.workdir = workdir
        self.cores = cores
        self.stream_users = stream_users
        self.servers: dict[str, Server] = {}
        self.facts: dict[str, int] = {}  # what plan learnt of a server once, e.g. its stream size
        self.member_token = ""  # a member's access token for users-auth, once started

    def __getitem__(self, name: str) -> Server:
        return self.servers[name]

    def __enter__(self) -> Stack:
        try:
            self._start_all()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for server in reversed(self.servers.values()):
            server.stop()

    def _start(self, name: str, args: list[str], env: dict[str, str], cores: str | None) -> None:
        self.servers[name] = Server.start(name, args, env, cores, self.workdir)

    def _start_all(self) -> None:
        database = self.workdir / "users.db"
        users_env = {
            **database_env(database),
            "USERS_LISTEN_ADDRESS": "127.0.0.1:{port}",
            "USERS_GRACE_PERIOD_SECONDS": "2",
            # The plain rows measure the service as it was before access control (loopback
            # only; the peers and HTTP frontends carry no token): "users-auth" below is the
            # same service checking a token on every call.
            "USERS_AUTH_ENFORCED": "false",
            # The bench measures capacity from one address: the per-caller rates are off.
            "USERS_WRITES_PER_SECOND": "0",
            "USERS_IMPORTS_PER_MINUTE": "0",
        }
        self._start("users", ["-m", "users_service"], users_env, self.cores.server)
        asyncio.run(seed(self["users"].port, self.stream_users))
        self._start_with_auth(users_env)
        # Creates go to their own database, so that every GetUsers streams the same users.
        writes_env = {**users_env, **database_env(self.workdir / "writes.db")}
        self._start("users-writes", ["-m", "users_service"], writes_env, self.cores.server)
        # The same service over TLS and over mTLS (same database): the cost of the transport.
        tls = self._tls_files()
        tls_env = {
            **users_env,
            "USERS_TLS_CERT_FILE": str(tls / "users.pem"),
            "USERS_TLS_KEY_FILE": str(tls / "users.key"),
            "USERS_TLS_CA_FILE": str(tls / "ca.pem"),
        }
        self._start("users-tls", ["-m", "users_service"], tls_env, self.cores.server)
        mtls_env = {**tls_env, "USERS_TLS_CLIENT_AUTH": "require"}
        self._start("users-mtls", ["-m", "users_service"], mtls_env, self.cores.server)
        # The HTTP frontends' backend: a second process on the same file, off the server core.
        self._start("users-backend", ["-m", "users_service"], users_env, self.cores.load)
        backend = f"127.0.0.1:{self['users-backend'].port}"
        self._start_observed(users_env, backend)
        peer = ["--port={port}", f"--stream-users={self.stream_users}"]
        for name, module, extra in (
            ("aio", "aio_echo", []),
            ("aio-uvloop", "aio_echo", ["--uvloop"]),
            # The echo on the users service's runtime: uvloop, its grpc core settings, SCHED_BATCH.
            ("aio-tuned", "tuned_echo", ["--uvloop"]),
            ("sync-tutorial", "sync_tutorial", []),
            ("grpclib", "grpclib_echo", []),
            ("fastapi-bare", "fastapi_echo", []),
            ("fastapi-grpc", "fastapi_echo", [f"--users-target={backend}"]),
            ("flask-tutorial", "flask_tutorial", [f"--users-target={backend}"]),
        ):
            self._start(name, ["-m", _PEERS + module, *peer, *extra], {}, self.cores.server)
        webapp_env = {
            "WEBAPP_USERS_TARGET": backend,
            "WEBAPP_PORT": "{port}",
            "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
            "WEBAPP_WRITES_PER_SECOND": "0",
        }
        self._start("webapp", ["-m", "webapp"], webapp_env, self.cores.server)

    def _start_observed(self, users_env: dict[str, str], backend: str) -> None:
        """The users service and the webapp with metrics served, with tracing on but nothing
        sampled, and with every call sampled and exported (to a sink off the server core)."""
        self._start("otlp-sink", ["-m", _PEERS + "otlp_sink", "--port={port}"], {}, self.cores.load)
        otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self['otlp-sink'].port}"}
        variants = {
            "metrics": {"METRICS_LISTEN_ADDRESS": "127.0.0.1:0"},
            "unsampled": {**otlp, "OTEL_TRACES_SAMPLER": "always_off"},
            "sampled": {**otlp, "OTEL_TRACES_SAMPLER": "always_on"},
        }
        webapp_env = {
            "WEBAPP_USERS_TARGET": backend,
            "WEBAPP_PORT": "{port}",
            "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
        }
        for variant, extra in variants.items():
            for service, env, module in (
                ("users", users_env, "users_service"),
                ("webapp", webapp_env, "webapp"),
            ):
                prefix = f"{service.upper()}_"
                named = {
                    (prefix + k if k.startswith("METRICS") else k): v for k, v in extra.items()
                }
                self._start(
                    f"{service}-{variant}", ["-m", module], {**env, **named}, self.cores.server
                )

    def _start_with_auth(self, users_env: dict[str, str]) -> None:
        """users-auth: the same database, every call checked; a member's token to call it with
        (a seeded user given a password by the bench's operator: no new row)."""
        issuer = TestIssuer(self.workdir / "issuer")
        auth_env = {**users_env, **issuer.server_env(), "USERS_AUTH_ENFORCED": "true"}
        self._start("users-auth", ["-m", "users_service"], auth_env, self.cores.server)
        operator = issuer.token("admin")
        self.member_token = asyncio.run(member_token(self["users-auth"].port, operator))

    @property
    def tls_dir(self) -> Path:
        """ca.pem, users.pem/.key (the servers'), client.pem/.key (the load's), made per run."""
        return self.workdir / "tls"

    def _tls_files(self) -> Path:
        ca = CertificateAuthority.create("bench CA")
        (self.tls_dir).mkdir(parents=True, exist_ok=True)
        (self.tls_dir / "ca.pem").write_bytes(ca.cert_pem)
        ca.issue("users", dns_names=["localhost"], ip_addresses=["127.0.0.1"]).write(
            self.tls_dir / "users"
        )
        ca.issue("bench-load").write(self.tls_dir / "client")
        return self.tls_dir


MEMBER_PASSWORD = secrets.token_urlsafe(16)


async def member_token(port: int, operator_token: str) -> str:
    """Gives the first seeded user a password (as an admin) and signs in as it: a member."""
    admin = (("authorization", f"Bearer {operator_token}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        auth = users_pb2_grpc.AuthServiceStub(channel)
        reset = users_pb2.ResetPasswordRequest(id=1, new_password=MEMBER_PASSWORD)
        await auth.ResetPassword(reset, metadata=admin, timeout=30)
        request = users_pb2.SignInRequest(username=seeded_username(1), password=MEMBER_PASSWORD)
        signed = await auth.SignIn(request, timeout=30)
    return str(signed.access_token)


async def seed(port: int, count: int) -> None:
    """Imports `count` users (ids 1..count, usernames user0000001...) through ImportUsers."""

    async def rows() -> AsyncIterator[users_pb2.CreateUserRequest]:
        for index in range(1, count + 1):
            name = seeded_username(index)
            yield users_pb2.CreateUserRequest(
                username=name, email=f"{name}@example.com", display_name=f"User {index}"
            )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        summary = await stub.ImportUsers(rows(), timeout=300)
    if summary.created_count != count:
        raise SystemExit(f"seeding created {summary.created_count} users, not {count}")
