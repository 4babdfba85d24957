"""plumbing.tls against real certificates (made here), real grpc.aio servers on real ports."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from plumbing.tls import (
    ClientAuth,
    ReloadingChannel,
    ReloadingMaterial,
    TlsError,
    TlsFiles,
    load_material,
    peer_identity,
    server_credentials,
)
from testkit.certs import CertificateAuthority, Issued
from testkit.channels import aio_channel

WHO = "/test.Tls/Who"
COUNT = "/test.Tls/Count"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("test CA")


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority.create("another CA")


def _server_cert(ca: CertificateAuthority, name: str = "users") -> Issued:
    return ca.issue(name, dns_names=["localhost", name], ip_addresses=["127.0.0.1"])


def _files(directory: Path, ca: CertificateAuthority, issued: Issued | None) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    if issued is None:
        return TlsFiles(ca_file=ca_file)
    cert, key = issued.write(directory / "tls")
    return TlsFiles(cert, key, ca_file)


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Who: the caller's verified identity. Count: n messages, the later ones after `go`."""

    def __init__(self) -> None:
        self.go = asyncio.Event()

    def service(self, details: Any) -> Any:
        if details.method == WHO:
            return grpc.unary_unary_rpc_method_handler(self._who)
        if details.method == COUNT:
            return grpc.unary_stream_rpc_method_handler(self._count)
        return None

    async def _who(self, request: bytes, context: Any) -> bytes:
        return (peer_identity(context) or "-").encode()

    async def _count(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for n in range(int(request)):
            if n == 1:
                await self.go.wait()
            yield str(n).encode()


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[Any] = []

    async def start(credentials: Any) -> tuple[int, _Handlers]:
        handlers = _Handlers()
        server = grpc.aio.server(handlers=[handlers])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        servers.append(server)
        return port, handlers

    yield start
    for server in servers:
        await server.stop(0)


async def _who(port: int, credentials: Any | None) -> str:
    async with aio_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply: bytes = await channel.unary_unary(WHO)(b"", timeout=5)
    return reply.decode()


def _client(ca: CertificateAuthority, issued: Issued | None = None) -> Any:
    return grpc.ssl_channel_credentials(
        ca.cert_pem,
        None if issued is None else issued.key_pem,
        None if issued is None else issued.cert_pem,
    )


def _served_certificate(port: int, ca_file: Path) -> x509.Certificate:
    """The certificate a new TLS connection to the port is served (the ssl module, ALPN h2)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def _rest(stream: Any) -> list[bytes]:
    """The stream's remaining messages (read() once started with read())."""
    messages = []
    while (message := await stream.read()) is not grpc.aio.EOF:
        messages.append(message)
    return messages


# --- loading and checking the files ---------------------------------------------------------


def test_load_material_reads_a_good_set(tmp_path: Path, ca: CertificateAuthority) -> None:
    material = load_material(_files(tmp_path, ca, _server_cert(ca)))
    assert material.cert_chain is not None
    assert material.private_key is not None
    assert material.root_certificates == ca.cert_pem
    assert "CN=users" in material.summary
    assert "DNS:localhost" in material.summary


def test_missing_file_is_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    assert files.key_file is not None
    files.key_file.unlink()
    with pytest.raises(TlsError, match=rf"key file {files.key_file}: missing"):
        load_material(files)


def test_unreadable_file_is_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    files = TlsFiles(ca_file=tmp_path)  # a directory: open() fails (root reads mode-000 files)
    with pytest.raises(TlsError, match=rf"CA file {tmp_path}: unreadable \(Is a directory\)"):
        load_material(files)


def test_empty_and_garbage_files_are_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    assert files.cert_file is not None
    assert files.key_file is not None
    files.cert_file.write_bytes(b"")
    with pytest.raises(TlsError, match=rf"certificate file {files.cert_file}: empty"):
        load_material(files)
    files.cert_file.write_bytes(b"hello")
    with pytest.raises(TlsError, match="not a PEM certificate"):
        load_material(files)
    files.cert_file.write_bytes(ca.cert_pem)
    files.key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(TlsError, match=rf"key file {files.key_file}: not a PEM private key"):
        load_material(files)


def test_expired_certificate_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    files = _files(tmp_path, ca, ca.issue("old", not_before=long_ago, days=10))
    with pytest.raises(TlsError, match=rf"certificate file {files.cert_file}: expired \(CN=old"):
        load_material(files)


def test_not_yet_valid_certificate_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    files = _files(tmp_path, ca, ca.issue("early", not_before=later))
    with pytest.raises(TlsError, match=rf"{files.cert_file}: not yet valid \(CN=early"):
        load_material(files)


def test_key_that_does_not_match_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    assert files.key_file is not None
    files.key_file.write_bytes(_server_cert(ca).key_pem)  # another certificate's key
    with pytest.raises(
        TlsError, match=rf"key file {files.key_file}: does not match the certificate in"
    ):
        load_material(files)


def test_server_refuses_optional_client_auth(tmp_path: Path, ca: CertificateAuthority) -> None:
    with pytest.raises(TlsError, match="'optional' is not available"):
        server_credentials(_files(tmp_path, ca, _server_cert(ca)), ClientAuth.OPTIONAL)


def test_require_needs_a_ca_file(tmp_path: Path, ca: CertificateAuthority) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    with pytest.raises(TlsError, match="needs a CA file"):
        server_credentials(TlsFiles(files.cert_file, files.key_file), ClientAuth.REQUIRE)


# --- who gets in ----------------------------------------------------------------------------


async def test_tls_server_answers_a_client_that_trusts_its_ca(
    tmp_path: Path, ca: CertificateAuthority, serve: Any
) -> None:
    port, _ = await serve(
        server_credentials(_files(tmp_path, ca, _server_cert(ca)), ClientAuth.NONE)
    )
    assert await _who(port, _client(ca)) == "-"


async def test_tls_server_refuses_a_plaintext_client(
    tmp_path: Path, ca: CertificateAuthority, serve: Any
) -> None:
    port, _ = await serve(
        server_credentials(_files(tmp_path, ca, _server_cert(ca)), ClientAuth.NONE)
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _who(port, None)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_client_that_does_not_trust_the_ca_is_refused(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority, serve: Any
) -> None:
    port, _ = await serve(
        server_credentials(_files(tmp_path, ca, _server_cert(ca)), ClientAuth.NONE)
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _who(port, _client(other_ca))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_require_refuses_clients_without_a_certificate_from_the_ca(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority, serve: Any
) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    port, _ = await serve(server_credentials(files, ClientAuth.REQUIRE))
    for credentials in (_client(ca), _client(ca, other_ca.issue("intruder"))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _who(port, credentials)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    webapp = ca.issue("webapp", dns_names=["webapp.userstack.svc"])
    assert await _who(port, _client(ca, webapp)) == "webapp.userstack.svc"
    assert await _who(port, _client(ca, ca.issue("cn-only"))) == "cn-only"


async def test_none_does_not_ask_for_the_client_certificate(
    tmp_path: Path, ca: CertificateAuthority, serve: Any
) -> None:
    """Why `optional` is refused: without `require`, grpcio never asks for the certificate."""
    port, _ = await serve(
        server_credentials(_files(tmp_path, ca, _server_cert(ca)), ClientAuth.NONE)
    )
    assert await _who(port, _client(ca, ca.issue("webapp"))) == "-"


# --- rotation -------------------------------------------------------------------------------


def _kubelet_dir(root: Path, ca: CertificateAuthority, issued: Issued, version: str) -> TlsFiles:
    """Files laid out like a Secret volume: name -> ..data/name, ..data -> a versioned dir."""
    _files(root / version, ca, issued)
    data = root / "..data"
    staged = root / "..data_tmp"
    staged.symlink_to(version)
    os.replace(staged, data)  # the atomic swap the kubelet does
    for name in ("tls.pem", "tls.key", "ca.pem"):
        link = root / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    return TlsFiles(root / "tls.pem", root / "tls.key", root / "ca.pem")


async def test_rotated_files_reach_new_connections_and_open_streams_finish(
    tmp_path: Path, ca: CertificateAuthority, serve: Any
) -> None:
    first, second = _server_cert(ca, "users-1"), _server_cert(ca, "users-2")
    files = _kubelet_dir(tmp_path, ca, first, "v1")
    assert files.ca_file is not None
    port, handlers = await serve(server_credentials(files, ClientAuth.NONE))
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", _client(ca)) as channel:
        stream = channel.unary_stream(COUNT)(b"5", timeout=10)
        assert await stream.read() == b"0"  # the stream is open, on a v1 connection
        _kubelet_dir(tmp_path, ca, second, "v2")
        served = await asyncio.to_thread(_served_certificate, port, files.ca_file)
        assert served.serial_number == second.certificate.serial_number
        handlers.go.set()
        assert await _rest(stream) == [b"1", b"2", b"3", b"4"]
        assert await stream.code() is grpc.StatusCode.OK
        # The old connection still serves new calls.
        assert await channel.unary_unary(WHO)(b"", timeout=5) == b"-"


async def test_broken_renewal_keeps_the_old_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    files = _files(tmp_path, ca, _server_cert(ca))
    material = ReloadingMaterial(files)
    assert material.poll() is None
    assert files.key_file is not None
    files.key_file.write_bytes(_server_cert(ca).key_pem)  # half-way through a renewal
    assert material.poll() is None
    assert material.current.summary.startswith("CN=users")
    renewed = _server_cert(ca, "renewed")
    renewed.write(tmp_path / "tls")
    fresh = material.poll()
    assert fresh is not None
    assert fresh.summary.startswith("CN=renewed")


async def test_reloading_channel_presents_the_renewed_client_certificate(
    tmp_path: Path, ca: CertificateAuthority, serve: Any
) -> None:
    port, handlers = await serve(
        server_credentials(_files(tmp_path / "server", ca, _server_cert(ca)), ClientAuth.REQUIRE)
    )
    client_files = _files(tmp_path / "client", ca, ca.issue("client", dns_names=["client-1"]))
    reloading = ReloadingChannel(f"localhost:{port}", client_files, check_seconds=3600)
    channels: list[Any] = []
    try:
        assert await reloading.channel.unary_unary(WHO)(b"", timeout=5) == b"client-1"
        stream = reloading.channel.unary_stream(COUNT)(b"3", timeout=10)
        assert await stream.read() == b"0"
        assert not reloading.reload(channels.append)
        ca.issue("client", dns_names=["client-2"]).write(tmp_path / "client" / "tls")
        assert reloading.reload(channels.append)
        assert channels == [reloading.channel]
        assert await reloading.channel.unary_unary(WHO)(b"", timeout=5) == b"client-2"
        handlers.go.set()
        assert await _rest(stream) == [b"1", b"2"]  # the call on the old channel finished
    finally:
        await reloading.close(grace=0)
