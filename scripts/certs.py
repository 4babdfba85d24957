"""`make up`'s development certificates: a CA, the users server's certificate and a developer
client's, in the gitignored certs/ folder. Kept across runs; remade when missing, unreadable,
expired or within RENEW_DAYS of expiry (the CA too, and everything it signed with it).

    python -m scripts.certs [--dir certs] [--uid 10001]

certs/ca.pem, ca.key          the development CA (its key never leaves certs/)
certs/users.pem, users.key    the users server: localhost, 127.0.0.1, ::1, users, Kubernetes names
certs/webapp.pem, webapp.key  the webapp's client certificate for mTLS
certs/client.pem, client.key  a developer client (grpcurl -cacert certs/ca.pem -cert ... -key ...)
certs/postgres.pem, .key      compose.scale.yaml's PostgreSQL server (the users service verifies it)
certs/signing-keys/*.pem      the users service's token signing keys (Ed25519; every replica reads
                              the same directory; docs/access.md says how to rotate them)

The keys the containers read are made readable by --uid (their user, 10001) and nobody else;
postgres.key by the postgres image's uid 999 alone (0600: PostgreSQL refuses a key others can read).
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from cryptography import x509
from plumbing.tokens import generate_key_file
from testkit.certs import CertificateAuthority, Issued

RENEW_DAYS = 14
USERS_NAMES = [
    "localhost",
    "users",
    "users-headless",
    "users-headless.userstack",
    "users-headless.userstack.svc",
    "users-headless.userstack.svc.cluster.local",
    "users.userstack.svc.cluster.local",
]
# name -> (DNS names, IP addresses)
LEAVES: dict[str, tuple[list[str], list[str]]] = {
    "users": (USERS_NAMES, ["127.0.0.1", "::1"]),
    "webapp": (["webapp", "webapp.userstack.svc.cluster.local"], []),
    "client": (["developer"], []),
    "postgres": (["postgres", "localhost"], ["127.0.0.1"]),
}
# The official postgres image's uid (deploy/images/postgres keeps it).
POSTGRES_UID = 999


def _fresh(cert_file: Path, key_file: Path, now: datetime.datetime) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key_file.read_bytes()
    except (OSError, ValueError):
        return False
    return certificate.not_valid_after_utc - now > datetime.timedelta(days=RENEW_DAYS)


def _write(issued: Issued, stem: Path, uid: int | None) -> None:
    cert_file, key_file = issued.write(stem, key_mode=0o600)
    cert_file.chmod(0o644)
    if uid is not None and os.geteuid() == 0:
        os.chown(key_file, uid, uid)  # the containers' user reads it; nobody else
    elif uid is not None:
        key_file.chmod(0o644)  # not root: cannot give it away, so let the container read it


def ensure(directory: Path, uid: int | None = None) -> list[str]:
    """Makes what is missing or near expiry; returns the names (re)made."""
    now = datetime.datetime.now(datetime.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    new_ca = not _fresh(directory / "ca.pem", directory / "ca.key", now)
    if new_ca:
        ca = CertificateAuthority.create("userstack development CA")
        ca.issued.write(directory / "ca", key_mode=0o600)
        (directory / "ca.pem").chmod(0o644)
        made.append("ca")
    else:
        ca = CertificateAuthority.load(directory / "ca.pem", directory / "ca.key")
    for name, (dns_names, ips) in LEAVES.items():
        stem = directory / name
        if new_ca or not _fresh(stem.with_suffix(".pem"), stem.with_suffix(".key"), now):
            issued = ca.issue(name, dns_names=dns_names, ip_addresses=ips, days=90)
            owner = {"client": None, "postgres": POSTGRES_UID}.get(name, uid)
            _write(issued, stem, owner if uid is not None else None)
            made.append(name)
    if ensure_signing_key(directory / "signing-keys", uid):
        made.append("signing-keys")
    return made


def ensure_signing_key(directory: Path, uid: int | None = None) -> bool:
    """A signing key in `directory` unless it holds one (rotation adds keys: docs/access.md);
    True when one was made. The directory and keys are the containers' user's alone."""
    if any(directory.glob("*.pem")):
        return False
    key_file = generate_key_file(directory)
    if uid is not None and os.geteuid() == 0:
        os.chown(directory, uid, uid)
        os.chown(key_file, uid, uid)
    elif uid is not None:
        key_file.chmod(0o644)  # not root: cannot give it away, so let the container read it
        directory.chmod(0o755)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("certs"))
    parser.add_argument("--uid", type=int, default=None, help="owner of the services' keys")
    args = parser.parse_args()
    made = ensure(args.dir, args.uid)
    print(f"certs: {', '.join(made) if made else 'all current'} in {args.dir}/")


if __name__ == "__main__":
    main()
