"""TLS material from files: checked loading, gRPC server credentials that follow rotation, and
client channels that are rebuilt when their files change.

Certificates are files (a Kubernetes Secret volume, cert-manager's CSI driver, `make up`'s certs/),
renewed in place by swapping a symlink. The server re-stats its files on each new TLS handshake
(grpcio's certificate-configuration fetcher) and serves renewed ones to new connections; the
connections already open keep theirs. grpcio has no such hook for a client: `ReloadingChannel`
checks its files every few seconds and moves new calls to a new channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

logger = logging.getLogger(__name__)

CLIENT_CHECK_SECONDS = 5.0
OLD_CHANNEL_GRACE_SECONDS = 30.0


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message names the file and the problem."""


class ClientAuth(enum.StrEnum):
    """Whether the server asks clients for a certificate."""

    NONE = "none"
    # grpcio's Python API cannot ask for a client certificate without requiring one (it tells
    # grpc core "don't request" unless authentication is required): `optional` is refused.
    OPTIONAL = "optional"
    REQUIRE = "require"


@dataclass(frozen=True)
class TlsFiles:
    """Where the PEM files are. A server needs cert and key; a client needs the CA (or the
    system's roots when None), and cert and key only to present a client certificate."""

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None

    def paths(self) -> tuple[Path, ...]:
        """The files that are set."""
        return tuple(p for p in (self.cert_file, self.key_file, self.ca_file) if p is not None)


@dataclass(frozen=True)
class TlsMaterial:
    """The checked contents of a TlsFiles: PEM bytes as grpcio takes them, and what to log."""

    cert_chain: bytes | None
    private_key: bytes | None
    root_certificates: bytes | None
    # The leaf certificate's subject, SANs and expiry, for logs; "" without a certificate.
    summary: str = ""

    @property
    def digest(self) -> str:
        """A hash of the whole material: equal digests, same files."""
        parts = (self.cert_chain or b"", self.private_key or b"", self.root_certificates or b"")
        return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{what} {path}: missing (no such file)") from None
    except PermissionError:
        uid = os.getuid()
        raise TlsError(f"{what} {path}: unreadable (permission denied for uid {uid})") from None
    except OSError as error:
        raise TlsError(f"{what} {path}: unreadable ({error.strerror})") from None
    if not data.strip():
        raise TlsError(f"{what} {path}: empty")
    return data


def _certificates(path: Path, what: str, now: datetime.datetime) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsError(f"{what} {path}: not a PEM certificate") from None
    for certificate in certificates:
        subject = certificate.subject.rfc4514_string()
        if certificate.not_valid_before_utc > now:
            raise TlsError(
                f"{what} {path}: not yet valid ({subject} is valid from "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC)"
            )
        if certificate.not_valid_after_utc < now:
            raise TlsError(
                f"{what} {path}: expired ({subject} expired on "
                f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)"
            )
    return certificates


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _check_key(path: Path, leaf: x509.Certificate, cert_path: Path) -> bytes:
    data = _read(path, "key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsError(f"key file {path}: encrypted (a passphrase-protected key)") from None
    except ValueError:
        raise TlsError(f"key file {path}: not a PEM private key") from None
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise TlsError(f"key file {path}: does not match the certificate in {cert_path}")
    return data


def describe(certificate: x509.Certificate) -> str:
    """`CN=users; DNS:localhost,IP:127.0.0.1; until 2027-01-01T00:00:00Z`, for logs."""
    names: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
        names += [f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
    until = certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{certificate.subject.rfc4514_string()}; {','.join(names) or 'no SANs'}; until {until}"


def load_material(files: TlsFiles, now: datetime.datetime | None = None) -> TlsMaterial:
    """Reads and checks the files: present, readable, PEM, within their validity, key matching
    the certificate. TlsError names the first file with a problem."""
    now = datetime.datetime.now(datetime.UTC) if now is None else now
    if (files.cert_file is None) != (files.key_file is None):
        raise TlsError("a certificate file needs its key file, and a key file its certificate")
    chain = key = roots = None
    summary = ""
    if files.cert_file is not None and files.key_file is not None:
        leaf = _certificates(files.cert_file, "certificate file", now)[0]
        key = _check_key(files.key_file, leaf, files.cert_file)
        chain = _read(files.cert_file, "certificate file")
        summary = describe(leaf)
    if files.ca_file is not None:
        _certificates(files.ca_file, "CA file", now)
        roots = _read(files.ca_file, "CA file")
    return TlsMaterial(chain, key, roots, summary)


class _Signature:
    """What os.stat says of the files (following symlinks): a swapped symlink, a rewritten or
    replaced file changes it. Cheap enough to take on every handshake (a few microseconds)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)

    def take(self) -> tuple[tuple[int, ...], ...]:
        taken: list[tuple[int, ...]] = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except OSError:
                taken.append(())
                continue
            taken.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(taken)


class ReloadingMaterial:
    """TlsMaterial that follows its files: `poll()` returns new material once they change.

    Files caught half-written (or renewed with a problem) are logged and skipped: the material
    in use stays until the files are good again.

    Example:
        >>> material = ReloadingMaterial(TlsFiles(cert, key, ca))
        >>> material.poll()  # None until the files change
    """

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._signature = _Signature(files.paths())
        self._seen = self._signature.take()
        self.current = load_material(files)
        self._lock = threading.Lock()  # grpc core calls the fetcher from its own threads

    def poll(self) -> TlsMaterial | None:
        """The new material if the files changed (and are good) since the last poll, else None."""
        with self._lock:
            seen = self._signature.take()
            if seen == self._seen:
                return None
            self._seen = seen
            try:
                material = load_material(self.files)
            except TlsError as error:
                logger.warning("TLS files changed but cannot be used, keeping the old: %s", error)
                return None
            if material.digest == self.current.digest:
                return None
            self.current = material
        logger.info("TLS files reloaded", extra={"certificate": material.summary})
        return material


def _server_config(material: TlsMaterial) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key or b"", material.cert_chain or b"")],
        root_certificates=material.root_certificates,
    )


def server_credentials(files: TlsFiles, client_auth: ClientAuth) -> Any:
    """grpc server credentials from the files, serving renewed files to new connections.

    TlsError on a file problem, or a client_auth these files or grpcio cannot honour.
    """
    if files.cert_file is None or files.key_file is None:
        raise TlsError("a TLS server needs a certificate file and a key file")
    if client_auth is ClientAuth.OPTIONAL:
        raise TlsError(
            "client auth 'optional' is not available: grpcio's Python server cannot ask for a"
            " client certificate without requiring one; use 'none' or 'require'"
        )
    if client_auth is ClientAuth.REQUIRE and files.ca_file is None:
        raise TlsError("client auth 'require' needs a CA file to verify client certificates")
    material = ReloadingMaterial(files)

    def fetch() -> Any:
        # Called by grpc core at each new handshake: None keeps the configuration in use.
        changed = material.poll()
        return None if changed is None else _server_config(changed)

    return grpc.dynamic_ssl_server_credentials(
        _server_config(material.current),
        fetch,
        require_client_authentication=client_auth is ClientAuth.REQUIRE,
    )


def channel_credentials(material: TlsMaterial) -> Any:
    """grpc channel credentials: trust the CA (or the system's roots), present the client
    certificate if there is one."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.root_certificates,
        private_key=material.private_key,
        certificate_chain=material.cert_chain,
    )


def peer_identity(context: Any) -> str | None:
    """The verified identity of the call's TLS client (its certificate's SANs, else its CN),
    or None without a client certificate."""
    identities = context.peer_identities()
    if not identities:
        return None
    return ",".join(i.decode(errors="replace") for i in identities)


Channel = Any
OnChannel = Callable[[Channel], None]


class ReloadingChannel:
    """A grpc.aio channel to `target` over TLS, replaced by a new one when the files change.

    The new channel takes every call made after the swap (`on_channel` rebuilds the caller's
    stubs on it); the old one closes after a grace, so calls and streams open on it finish.
    Without TLS files (`files` None) it is a plaintext channel that never changes.

    Example:
        >>> reloading = ReloadingChannel("users:50051", TlsFiles(cert, key, ca), options)
        >>> reloading.start(lambda channel: print("new channel", channel))
        >>> await reloading.close()
    """

    def __init__(
        self,
        target: str,
        files: TlsFiles | None,
        options: Sequence[tuple[str, Any]] = (),
        *,
        check_seconds: float = CLIENT_CHECK_SECONDS,
        old_channel_grace: float = OLD_CHANNEL_GRACE_SECONDS,
    ) -> None:
        self.target = target
        self._options = list(options)
        self._material = None if files is None else ReloadingMaterial(files)
        self._check_seconds = check_seconds
        self._grace = old_channel_grace
        self.channel: Channel = self._open()
        self._task: asyncio.Task[None] | None = None
        self._old: list[Channel] = []
        self._closing: set[asyncio.Task[None]] = set()

    def _open(self) -> Channel:
        if self._material is None:
            return grpc.aio.insecure_channel(self.target, options=self._options)
        credentials = channel_credentials(self._material.current)
        return grpc.aio.secure_channel(self.target, credentials, options=self._options)

    def start(self, on_channel: OnChannel) -> None:
        """Checks the files every few seconds from now on (a no-op for plaintext)."""
        if self._material is not None and self._task is None:
            self._task = asyncio.create_task(self._watch(on_channel), name="tls-channel-reload")

    async def _watch(self, on_channel: OnChannel) -> None:
        while True:
            await asyncio.sleep(self._check_seconds)
            self.reload(on_channel)

    def reload(self, on_channel: OnChannel) -> bool:
        """Swaps in a new channel if the files changed; True if it did."""
        if self._material is None or self._material.poll() is None:
            return False
        old, self.channel = self.channel, self._open()
        on_channel(self.channel)
        logger.info("TLS files changed: new channel to %s", self.target)
        self._old.append(old)
        task = asyncio.ensure_future(self._retire(old))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    async def _retire(self, old: Channel) -> None:
        await old.close(grace=self._grace)
        self._old.remove(old)

    async def close(self, grace: float | None = None) -> None:
        """Stops watching and closes the channels (open calls get `grace` seconds)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.gather(*(c.close(grace=grace) for c in [self.channel, *self._old]))
        self._old.clear()
