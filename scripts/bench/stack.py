"""The servers of one bench run (servers.py), started together, each then pinned to its core."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from testkit.certs import CertificateAuthority
from testkit.ports import free_port
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import seeded_username
from scripts.bench.procs import Server
from scripts.bench.servers import Files, definitions

STARTUP_SECONDS = 120.0  # for all of them, started together on a machine maybe shared
# A member's access token lives 15 minutes (the users service's default token_ttl_seconds) and a
# full run ~20: renewed between rows once this old, before a row (at most 120 s) can outlive it.
TOKEN_REFRESH_SECONDS = 300.0


@dataclass(frozen=True)
class Cores:
    """Where things run: servers on one core; load and the webapp's backend on the other."""

    server: str | None
    load: str | None

    @classmethod
    def split(cls, pin: bool) -> Cores:
        return cls("0", "1") if pin else cls(None, None)


class Stack:
    """Starts the servers a run needs (servers.py), gives them by name, stops them all.

    Example:
        >>> with Stack(workdir, cores, 100_000, {"users"}) as stack:  # doctest: +SKIP
        ...     stack["users"].port
    """

    def __init__(
        self, workdir: Path, cores: Cores, stream_users: int, names: Iterable[str] | None = None
    ) -> None:
        self.workdir = workdir
        self.cores = cores
        self.stream_users = stream_users
        self.servers: dict[str, Server] = {}
        self.facts: dict[str, int] = {}  # what plan learnt of a server once, e.g. its stream size
        self._issuer = TestIssuer(workdir / "issuer")
        files = Files(workdir, self._issuer.server_env(), stream_users)
        self.specs = definitions(files)
        self._names = set(self.specs if names is None else names)
        self._tokens: dict[str, tuple[str, float]] = {}  # caller -> (token, when obtained)

    def __getitem__(self, name: str) -> Server:
        return self.servers[name]

    def __enter__(self) -> Stack:
        try:
            self._make_tls_files()
            self._start_all(self.needed(self._names))
            for name in self.servers:  # now, not in a row's measured time (sign-in hashes)
                self.token(name)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        """Stops every server at once (each drains for up to its grace), then the trace sink,
        which the others flush their last spans to as they stop."""
        last = [self.servers[name] for name in ("otlp-sink",) if name in self.servers]
        first = [server for server in self.servers.values() if server not in last]
        for wave in (first, last):
            for server in wave:
                server.terminate()
            for server in wave:
                server.stop()

    def needed(self, names: Iterable[str]) -> set[str]:
        """`names` and every server they need, the source of a member's token included."""
        out: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                spec = self.specs[name]
                todo += [*spec.needs, *(["users-auth"] if spec.caller == "member" else [])]
        return out

    def _start_all(self, names: set[str]) -> None:
        """Each server as soon as what it needs is up, unpinned (start-up imports use both
        cores), pinned to its core once it accepts; "users" is seeded once it accepts."""
        ports: set[int] = set()
        ready: set[str] = set()
        deadline = time.monotonic() + STARTUP_SECONDS
        while ready != names:
            for name in sorted(names - self.servers.keys()):
                if set(self.specs[name].needs) <= ready:
                    self.servers[name] = self._spawn(name, ports)
            starting = [self[name] for name in self.servers.keys() - ready]
            if not starting:
                raise SystemExit(f"bench servers that need each other: {names - ready}")
            for server in (s for s in starting if s.accepting()):
                self._ready(server)
                ready.add(server.name)
            if time.monotonic() > deadline:
                raise SystemExit(f"bench servers not accepting after {STARTUP_SECONDS} s: "
                                 f"{[s.name for s in starting]}")  # fmt: skip
            time.sleep(0.05)

    def _ready(self, server: Server) -> None:
        beside_load = self.specs[server.name].beside_load
        cores = self.cores.load if beside_load else self.cores.server
        if cores is not None:
            server.pin(cores)
        if server.name == "users":
            asyncio.run(seed(server.port, self.stream_users))

    def _spawn(self, name: str, ports: set[int]) -> Server:
        spec = self.specs[name]
        while (port := free_port()) in ports:  # free when asked: not twice in one wave
            pass
        ports.add(port)
        env = {k: _ports_of(self.servers, v) for k, v in spec.env.items()}
        args = [_ports_of(self.servers, a) for a in spec.args]
        return Server.spawn(name, args, env, None, self.workdir, port=port)

    def token(self, server: str) -> str | None:
        """The access token every call to `server` carries (None: no token)."""
        caller = self.specs[server].caller
        if caller is None:
            return None
        if caller not in self._tokens:
            self._tokens[caller] = (self._new_token(caller), time.monotonic())
        return self._tokens[caller][0]

    def fresh_tokens(self) -> None:
        """Signs in again where a token is older than TOKEN_REFRESH_SECONDS: a member's access
        token lives 15 minutes, a full run longer (runner.py calls this between rows, outside
        the measured time)."""
        for caller, (_, obtained) in list(self._tokens.items()):
            if time.monotonic() - obtained > TOKEN_REFRESH_SECONDS:
                self._tokens[caller] = (self._new_token(caller), time.monotonic())

    def _new_token(self, caller: str) -> str:
        if caller == "admin":
            return self._issuer.token("admin", ttl=24 * 3600)  # an operator's (OIDC) token
        operator = None if caller in self._tokens else self._issuer.token()  # the first time
        return asyncio.run(member_token(self["users-auth"].port, operator))

    def tls_dir_for(self, server: str) -> Path | None:
        """The CA and client certificate to call `server` with (None: plaintext)."""
        return self.tls_dir if self.specs[server].client_cert else None

    @property
    def tls_dir(self) -> Path:
        """ca.pem, users.pem/.key (the servers'), client.pem/.key (the load's), made per run."""
        return self.workdir / "tls"

    def _make_tls_files(self) -> None:
        ca = CertificateAuthority.create("bench CA")
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        (self.tls_dir / "ca.pem").write_bytes(ca.cert_pem)
        ca.issue("users", dns_names=["localhost"], ip_addresses=["127.0.0.1"]).write(
            self.tls_dir / "users"
        )
        ca.issue("bench-load").write(self.tls_dir / "client")


def _ports_of(servers: dict[str, Server], value: str) -> str:
    """`value` with each `{port:NAME}` replaced by server NAME's port."""
    return re.sub(r"\{port:([\w-]+)\}", lambda m: str(servers[m[1]].port), value)


MEMBER_PASSWORD = secrets.token_urlsafe(16)


async def member_token(port: int, operator_token: str | None) -> str:
    """Signs in as the first seeded user: a member. With an operator's token, first gives it its
    password (as an admin): once, since a reset revokes the member's tokens, and the servers on
    other SQLite files would not learn of the new ones (no change feed between them)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        auth = users_pb2_grpc.AuthServiceStub(channel)
        if operator_token is not None:
            admin = (("authorization", f"Bearer {operator_token}"),)
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
