"""A throwaway PostgreSQL server for the tests: initdb into a temp dir, postgres on a free port."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from testkit.ports import free_port

USER = "userstack"
# scram-sha-256 auth: the URLs carry a password, as in production (one per test session).
PASSWORD = secrets.token_hex(12)
START_TIMEOUT_SECONDS = 30


def find_bindir() -> Path | None:
    """Where Debian's (newest) or the PATH's initdb and postgres are, or None."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda initdb: (
            int(initdb.parent.parent.name) if initdb.parent.parent.name.isdigit() else 0
        ),
    )
    if debian:
        return debian[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """initdb + postgres in a temp dir, run as the `postgres` user when we are root.

    fsync is off: the tests need a real server's semantics (constraints, locks, NOTIFY,
    connections that drop), not durability across power loss.

    Example:
        >>> server = PostgresServer(find_bindir())  # doctest: +SKIP
        >>> server.start()
        >>> server.create_database("t1")
        >>> url = server.url("t1")
        >>> server.stop()
    """

    def __init__(self, bindir: Path, tls: tuple[bytes, bytes] | None = None) -> None:
        self._bindir = bindir
        self._tls = tls  # (certificate PEM, key PEM): ssl=on with them
        # Not under pytest's tmp dirs: those are root-only (0700), and postgres must reach it.
        self.directory = Path(tempfile.mkdtemp(prefix="userstack-pg-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

    @property
    def log(self) -> Path:
        """The server's own log."""
        return self.directory / "postgres.log"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """initdb, then postgres; returns once it accepts connections."""
        pwfile = self.directory / "pwfile"
        pwfile.write_text(PASSWORD)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        data = self.directory / "data"
        self._run(
            str(self._bindir / "initdb"), "--pgdata", str(data), "--username", USER,
            "--pwfile", str(pwfile), "--auth", "scram-sha-256", "--encoding", "UTF8",
            "--locale", "C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    *self._as_postgres, *self._stop_with_us(), str(self._bindir / "postgres"),
                    "-D", str(data),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                    "-c", f"unix_socket_directories={self.directory}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=200",
                    *self._ssl_options(),
                ],
                stdout=log,
                stderr=log,
            )  # fmt: skip
        self._wait_ready()

    def _ssl_options(self) -> list[str]:
        if self._tls is None:
            return []
        cert, key = self.directory / "server.pem", self.directory / "server.key"
        cert.write_bytes(self._tls[0])
        key.write_bytes(self._tls[1])
        key.chmod(0o600)  # PostgreSQL refuses a key that others may read
        if self._as_postgres:
            for path in (cert, key):
                shutil.chown(path, "postgres", "postgres")
        return ["-c", "ssl=on", "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}"]

    @staticmethod
    def _stop_with_us() -> list[str]:
        # A test run killed outright (no fixture teardown) must not leave a server behind:
        # the kernel sends postgres SIGINT (fast shutdown) when this process dies.
        if shutil.which("setpriv") is None:
            return []
        return ["setpriv", "--pdeathsig=SIGINT"]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            else:
                return

    def url(self, database: str, user: str = USER, password: str = PASSWORD) -> str:
        """A postgresql:// URL (with the password) for one database of this server."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the `postgres` database, for setup and faults."""
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def create_database(self, name: str) -> None:
        """A fresh, empty database."""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        """Drops the database, disconnecting whoever is still on it."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cut_off(self, name: str) -> None:
        """The database goes away for its clients: new connections refused, existing ones killed."""
        with self.admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    def restore(self, name: str) -> None:
        """Connections to the database are allowed again."""
        with self.admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then the temp dir is removed."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)
