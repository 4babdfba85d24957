"""Where and how to connect: the target, the transport and TLS files, from flags and environment.

Defaults that work out of the box (docs/cli.md#connecting):
- the target is USERSTACK_TARGET, else localhost:50051, where both `make up` and `make run-users`
  listen;
- TLS files given (flags or USERSTACK_CA_FILE, _CERT_FILE, _KEY_FILE) mean TLS; else the certs/
  folder `make up` writes (found from the current directory upwards, or USERSTACK_CERTS_DIR) is used
  for mTLS, and on a local target plaintext is tried beside it (`make run-users` serves plaintext),
  the first to connect winning;
- inside the users image, the service's own USERS_TLS_* files are used the same way;
- a `unix:` target is plaintext unless TLS files are given; any other non-local target gets TLS
  (the system's roots without a CA file), never plaintext unless --plaintext says so.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from plumbing.tls import TlsFiles

DEFAULT_TARGET = "localhost:50051"
CERTS_DIR = "certs"


class Transport(enum.Enum):
    """How to talk to the target."""

    PLAINTEXT = "plaintext"
    TLS = "tls"
    # A local target with the development certs/ found: TLS and plaintext raced, first ready wins.
    EITHER = "either"


@dataclass(frozen=True)
class Connection:
    """The resolved connection settings of one command.

    Example:
        >>> resolve("unix:///tmp/users.sock", env={}).transport
        <Transport.PLAINTEXT: 'plaintext'>
    """

    target: str
    transport: Transport
    tls: TlsFiles | None
    timeout: float = 10.0
    connect_timeout: float = 5.0

    @property
    def local(self) -> bool:
        """A UNIX socket or a loopback address: plaintext stays on this machine."""
        return is_local(self.target)

    def describe(self) -> str:
        """How the connection is made, for messages."""
        if self.tls is None:
            return "plaintext"
        files = ", ".join(str(p) for p in self.tls.paths()) or "the system's CA roots"
        how = "TLS, or plaintext" if self.transport is Transport.EITHER else "TLS"
        return f"{how} ({files})"


def resolve(
    target: str | None,
    *,
    plaintext: bool = False,
    files: TlsFiles | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Connection:
    """The connection for `target` (default: USERSTACK_TARGET, else localhost:50051)."""
    env = os.environ if env is None else env
    target = target or env.get("USERSTACK_TARGET", "").strip() or DEFAULT_TARGET
    if plaintext:
        return Connection(target, Transport.PLAINTEXT, None)
    if files is not None and files.paths():
        return Connection(target, Transport.TLS, files)
    if target.startswith("unix:"):
        return Connection(target, Transport.PLAINTEXT, None)
    found = server_files(env) or development_certs(env, cwd or Path.cwd())
    if found is None:
        transport = Transport.PLAINTEXT if is_local(target) else Transport.TLS
        return Connection(target, transport, None if is_local(target) else TlsFiles())
    return Connection(target, Transport.EITHER if is_local(target) else Transport.TLS, found)


def server_files(env: Mapping[str, str]) -> TlsFiles | None:
    """Inside the users image (`docker compose exec users userstack ...`): the service's own
    USERS_TLS_* files, as users-healthcheck uses them (its certificate serves as the client's)."""
    ca = env.get("USERS_TLS_CA_FILE", "").strip()
    if not ca:
        return None
    cert, key = (
        env.get("USERS_TLS_CERT_FILE", "").strip(),
        env.get("USERS_TLS_KEY_FILE", "").strip(),
    )
    return TlsFiles(Path(cert) if cert else None, Path(key) if key else None, Path(ca))


def development_certs(env: Mapping[str, str], cwd: Path) -> TlsFiles | None:
    """The client files of `make up`'s certs/ (USERSTACK_CERTS_DIR, else found upwards)."""
    configured = env.get("USERSTACK_CERTS_DIR", "").strip()
    candidates = [Path(configured)] if configured else [d / CERTS_DIR for d in (cwd, *cwd.parents)]
    for folder in candidates:
        if (folder / "ca.pem").is_file():
            cert, key = folder / "client.pem", folder / "client.key"
            if cert.is_file() and key.is_file():
                return TlsFiles(cert, key, folder / "ca.pem")
            return TlsFiles(ca_file=folder / "ca.pem")
    return None


def is_local(target: str) -> bool:
    """True for unix: targets, localhost and loopback addresses (dns:/// and ipv4: prefixes too)."""
    if target.startswith("unix"):
        return True
    address = target.split("///", 1)[-1] if target.startswith("dns:") else target
    address = address.split(":", 1)[1] if address.startswith(("ipv4:", "ipv6:")) else address
    host = address.rpartition(":")[0] if ":" in address.strip("[]") else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
