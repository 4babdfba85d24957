"""PostgreSQL done safely, part 2: TLS verified against a CA (sslmode=verify-full), and a service
role made by deploy/overlays/postgres/initdb/10-app-role.sh that owns its database but is no
superuser. A server of its own (ssl=on, a certificate from a test CA) for this module."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from testkit.certs import CertificateAuthority
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.store import StoreUnavailable
from users_service.store.postgres import PostgresUserStore, conninfo

from .conftest import ServerFactory
from .pg_server import PASSWORD, USER, PostgresServer, find_bindir

pytestmark = pytest.mark.slow

ROLE_SCRIPT = Path(__file__).resolve().parents[3] / "deploy/overlays/postgres/initdb/10-app-role.sh"
APP_USER = "users_app"
APP_PASSWORD = secrets.token_hex(12)
DATABASE = "users"


class TlsDatabase:
    """The server, the CA that signed its certificate, and where that CA's PEM is."""

    def __init__(self, server: PostgresServer, ca_file: Path) -> None:
        self.server = server
        self.ca_file = ca_file

    def url(self, ca_file: Path | None = None, user: str = APP_USER) -> str:
        """The service role's URL, verify-full against `ca_file` (default: the right CA)."""
        password = APP_PASSWORD if user == APP_USER else PASSWORD
        base = self.server.url(DATABASE, user, password)
        return f"{base}?sslmode=verify-full&sslrootcert={ca_file or self.ca_file}"


def wait_until_plaintext_is_refused(url: str) -> None:
    """pg_reload_conf() only signals the server: wait (bounded) until the new rules apply."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return
        time.sleep(0.05)
    raise AssertionError("the server still accepts plaintext 10 s after the reload")


@pytest.fixture(scope="module")
def tls_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsDatabase]:
    """A PostgreSQL server with ssl=on and its `users` database, set up by the role script."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found: run `make system-deps`", pytrace=False)
    ca = CertificateAuthority.create("test database CA")
    issued = ca.issue("postgres", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    ca_file = tmp_path_factory.mktemp("pg-ca") / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    server = PostgresServer(bindir, tls=(issued.cert_pem, issued.key_pem))
    try:
        server.start()
        server.create_database(DATABASE)
        env = {
            **os.environ,
            "PATH": f"{bindir}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "PGPASSWORD": PASSWORD,
            "POSTGRES_USER": USER,
            "POSTGRES_DB": DATABASE,
            "POSTGRES_APP_USER": APP_USER,
            "POSTGRES_APP_PASSWORD": APP_PASSWORD,
        }
        env["PGDATA"] = str(server.directory / "data")
        # As the server's own user, as in the images (the script edits its pg_hba.conf).
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        as_postgres = as_postgres if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, "sh", str(ROLE_SCRIPT)], env=env, check=True, timeout=60)
        with server.admin() as conn:
            conn.execute("SELECT pg_reload_conf()")  # the images start the server afresh instead
        wait_until_plaintext_is_refused(server.url("postgres") + "?sslmode=disable")
        yield TlsDatabase(server, ca_file)
    finally:
        server.stop()


async def one(conn: psycopg.AsyncConnection[Any], query: str) -> object:
    cursor = await conn.execute(query)
    row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def test_the_service_connection_is_verified_tls_as_a_role_that_is_no_superuser(
    tls_database: TlsDatabase,
) -> None:
    store = PostgresUserStore(tls_database.url())
    await store.open()  # migrates, as the service role
    await store.close()
    async with await psycopg.AsyncConnection.connect(conninfo(tls_database.url())) as conn:
        assert await one(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        assert await one(conn, "SELECT current_user") == APP_USER
        assert (
            await one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        )
        assert await one(conn, "SELECT tableowner FROM pg_tables WHERE tablename = 'users'") == (
            APP_USER
        )
        assert await one(conn, "SHOW statement_timeout") == "10s"
        assert await one(conn, "SHOW lock_timeout") == "5s"
        assert await one(conn, "SHOW idle_in_transaction_session_timeout") == "2s"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("CREATE ROLE intruder SUPERUSER")


async def test_the_service_serves_over_verified_tls(
    tls_database: TlsDatabase,
    start_server: ServerFactory,
    admin_token: str,
) -> None:
    _, port = await start_server(database_url=tls_database.url())
    async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
        stub: Any = users_pb2_grpc.UserServiceStub(channel)
        name = f"tls{secrets.token_hex(4)}"
        created = await stub.CreateUser(users_pb2.CreateUserRequest(username=name), timeout=10)
        fetched = await stub.GetUser(users_pb2.GetUserRequest(id=created.id), timeout=10)
    assert fetched.username == name


async def test_a_server_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_database: TlsDatabase, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CertificateAuthority.create("some other CA").cert_pem)
    store = PostgresUserStore(tls_database.url(ca_file=other))
    with pytest.raises(StoreUnavailable, match="certificate verify failed") as caught:
        await store.open()
    assert APP_PASSWORD not in str(caught.value)


async def test_a_name_the_certificate_does_not_carry_is_refused(
    tls_database: TlsDatabase,
) -> None:
    # verify-full checks the name too: the right server and CA, under a name it was not issued for.
    url = tls_database.url().replace("@127.0.0.1:", "@db.example:") + "&hostaddr=127.0.0.1"
    store = PostgresUserStore(url)
    with pytest.raises(StoreUnavailable, match="does not match host name"):
        await store.open()


async def test_the_server_refuses_a_connection_without_tls(tls_database: TlsDatabase) -> None:
    url = tls_database.server.url(DATABASE, APP_USER, APP_PASSWORD) + "?sslmode=disable"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        await psycopg.AsyncConnection.connect(url)
