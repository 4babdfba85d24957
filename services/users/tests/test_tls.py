"""TLS and mTLS on the users service: who gets in, the log line's peer, the plaintext
health-only port, the TLS probe, and start-up refusing bad certificates or plaintext."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from testkit.certs import CertificateAuthority, Issued
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.config import ConfigError, Settings, check_transport
from users_service.server import UsersServer

from .conftest import ServerFactory, ServerProcess
from .test_health import healthcheck

SERVICE = "users.v1.UserService"


@dataclass(frozen=True)
class Pki:
    """A CA, the server's files, a client certificate, and one from another CA."""

    ca: CertificateAuthority
    ca_file: Path
    cert_file: Path
    key_file: Path
    client: Issued
    client_cert: Path
    client_key: Path
    stranger: Issued

    def env(self, client_auth: str = "require") -> dict[str, str]:
        return {
            "USERS_TLS_CERT_FILE": str(self.cert_file),
            "USERS_TLS_KEY_FILE": str(self.key_file),
            "USERS_TLS_CA_FILE": str(self.ca_file),
            "USERS_TLS_CLIENT_AUTH": client_auth,
        }

    def credentials(self, client: Issued | None = None) -> Any:
        return grpc.ssl_channel_credentials(
            self.ca.cert_pem,
            None if client is None else client.key_pem,
            None if client is None else client.cert_pem,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create("userstack test CA")
    (root / "ca.pem").write_bytes(ca.cert_pem)
    server = ca.issue("users", dns_names=["localhost", "users"], ip_addresses=["127.0.0.1"])
    cert_file, key_file = server.write(root / "users")
    client = ca.issue("webapp", dns_names=["webapp.userstack.svc.cluster.local"])
    client_cert, client_key = client.write(root / "client")
    stranger = CertificateAuthority.create("another CA").issue("webapp")
    return Pki(ca, root / "ca.pem", cert_file, key_file, client, client_cert, client_key, stranger)


@pytest.fixture
def start_tls(start_server: ServerFactory, pki: Pki) -> Callable[..., Any]:
    async def start(client_auth: str = "require", **overrides: Any) -> tuple[UsersServer, int]:
        started: tuple[UsersServer, int] = await start_server(
            tls_cert_file=pki.cert_file,
            tls_key_file=pki.key_file,
            tls_ca_file=pki.ca_file,
            tls_client_auth=client_auth,
            **overrides,
        )
        return started

    return start


async def _create(port: int, credentials: Any | None, name: str, token: str) -> users_pb2.User:
    async with aio_channel(f"127.0.0.1:{port}", credentials, token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        user: users_pb2.User = await stub.CreateUser(
            users_pb2.CreateUserRequest(username=name), timeout=5
        )
    return user


async def test_mtls_server_serves_a_client_with_a_certificate_from_its_ca(
    start_tls: Any, pki: Pki, admin_token: str
) -> None:
    _, port = await start_tls()
    created = await _create(port, pki.credentials(pki.client), "ada", admin_token)
    assert created.username == "ada"


@pytest.mark.parametrize("who", ["plaintext", "no certificate", "other CA", "untrusting"])
async def test_mtls_server_refuses_clients_it_cannot_verify(
    start_tls: Any, pki: Pki, who: str, admin_token: str
) -> None:
    _, port = await start_tls()
    credentials = {
        "plaintext": None,
        "no certificate": pki.credentials(),
        "other CA": pki.credentials(pki.stranger),
        # A client that trusts another CA does not trust this server.
        "untrusting": grpc.ssl_channel_credentials(
            CertificateAuthority.create("x").cert_pem, pki.client.key_pem, pki.client.cert_pem
        ),
    }[who]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create(port, credentials, "eve", admin_token)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_tls_without_client_auth_serves_clients_without_a_certificate(
    start_tls: Any, pki: Pki, admin_token: str
) -> None:
    _, port = await start_tls("none")
    assert (await _create(port, pki.credentials(), "grace", admin_token)).id > 0


async def test_health_port_answers_health_in_plaintext_and_nothing_else(
    start_tls: Any, pki: Pki
) -> None:
    server, _ = await start_tls(health_listen_address="127.0.0.1:0")
    assert server.health_port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as api:
            await users_pb2_grpc.UserServiceStub(channel).GetUser(
                users_pb2.GetUserRequest(id=1), timeout=5
            )
        assert api.value.code() is grpc.StatusCode.UNIMPLEMENTED
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        listing = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as reflected:
            async for _ in listing:
                pass
        assert reflected.value.code() is grpc.StatusCode.UNIMPLEMENTED
    await server.health.drain()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_healthcheck_cli_speaks_mtls(start_tls: Any, pki: Pki) -> None:
    _, port = await start_tls()
    address = f"localhost:{port}"
    files = ["--ca-file", str(pki.ca_file)]
    client = ["--cert-file", str(pki.client_cert), "--key-file", str(pki.client_key)]
    ok = await asyncio.to_thread(healthcheck, "--address", address, *files, *client)
    assert ok.returncode == 0, ok.stderr
    no_cert = await asyncio.to_thread(healthcheck, "--address", address, "--timeout", "1", *files)
    assert no_cert.returncode == 1
    plaintext = await asyncio.to_thread(healthcheck, "--address", address, "--timeout", "1")
    assert plaintext.returncode == 1


def test_healthcheck_cli_names_a_bad_file(tmp_path: Path) -> None:
    result = healthcheck("--ca-file", str(tmp_path / "nope.pem"))
    assert result.returncode == 1
    assert f"CA file {tmp_path / 'nope.pem'}: missing" in result.stderr


def test_log_line_names_the_verified_peer(
    spawn_server: Callable[..., ServerProcess], pki: Pki, admin_token: str
) -> None:
    proc = spawn_server(**pki.env())
    assert '"transport": "mtls"' in proc.wait_for_log('"message": "listening"')
    channel = grpc.secure_channel(
        f"localhost:{proc.port}",
        pki.credentials(pki.client),
        options=[("grpc.primary_user_agent", "tls-test/1")],
    )
    with channel:
        users_pb2_grpc.UserServiceStub(channel).CreateUser(
            users_pb2.CreateUserRequest(username="logged"),
            timeout=5,
            metadata=(("authorization", f"Bearer {admin_token}"),),
        )
    line = json.loads(proc.wait_for_log(r'"message": "rpc /users.v1.UserService/CreateUser OK"'))
    assert line["peer_identity"] == "webapp.userstack.svc.cluster.local"
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert line["user_agent"].startswith("tls-test/1")


def _run(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "users_service"],
        env={**os.environ, "USERS_LISTEN_ADDRESS": "127.0.0.1:0", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize("problem", ["expired", "mismatched", "missing"])
def test_bad_certificate_stops_the_start_naming_the_file(
    tmp_path: Path, pki: Pki, problem: str
) -> None:
    cert_file, key_file = pki.cert_file, pki.key_file
    if problem == "expired":
        long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=100)
        cert_file, key_file = pki.ca.issue("users", not_before=long_ago, days=1).write(
            tmp_path / "old"
        )
        expected = f"certificate file {cert_file}: expired"
    elif problem == "mismatched":
        key_file = pki.client_key
        expected = f"key file {key_file}: does not match the certificate in {cert_file}"
    else:
        cert_file = tmp_path / "gone.pem"
        expected = f"certificate file {cert_file}: missing"
    env = {**pki.env(), "USERS_TLS_CERT_FILE": str(cert_file), "USERS_TLS_KEY_FILE": str(key_file)}
    result = _run({**env, "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}"}, tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr


def test_plaintext_on_a_public_address_is_refused_unless_allowed(tmp_path: Path) -> None:
    result = _run({"USERS_LISTEN_ADDRESS": "0.0.0.0:0"}, tmp_path)
    assert result.returncode != 0
    assert "USERS_LISTEN_ADDRESS='0.0.0.0:0' is not a loopback address" in result.stderr
    assert "USERS_ALLOW_PLAINTEXT=true" in result.stderr
    allowed = Settings.from_env({"USERS_LISTEN_ADDRESS": "[::]:1", "USERS_ALLOW_PLAINTEXT": "true"})
    check_transport(allowed)
    for loopback in ("127.0.0.1:1", "localhost:1", "[::1]:1"):
        check_transport(Settings(listen_address=loopback))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"USERS_TLS_CLIENT_AUTH": "optional"}, "cannot ask for a client certificate"),
        ({"USERS_TLS_CLIENT_AUTH": "maybe"}, "expected none or require"),
        ({"USERS_ALLOW_PLAINTEXT": "perhaps"}, "expected true or false"),
    ],
)
def test_bad_tls_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_cert_file": Path("c.pem")}, "go together"),
        (
            {"tls_cert_file": Path("c"), "tls_key_file": Path("k"), "tls_client_auth": "require"},
            "require needs USERS_TLS_CA_FILE",
        ),
        ({"tls_client_auth": "require", "tls_ca_file": Path("ca")}, "needs TLS"),
    ],
)
def test_inconsistent_tls_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_transport(Settings(listen_address="127.0.0.1:1", **overrides))
