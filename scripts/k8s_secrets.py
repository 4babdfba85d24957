"""Print the Kubernetes Secrets an overlay of deploy/ needs, with fresh random values.

Nothing secret is ever written to disk or git: pipe the output straight to `kubectl create`,
which refuses to overwrite an existing Secret (PostgreSQL takes its password only when it first
initialises its volume, so silently replacing it would lock the users service out):

    kubectl apply -f deploy/base/namespace.yaml
    python3 scripts/k8s_secrets.py postgres | kubectl create -f -
    kubectl apply -k deploy/overlays/postgres

users-admin (username, password) is the first admin, made by the users service at start when no
user has that name (read it back: `kubectl get secret users-admin -o jsonpath=...`);
users-signing-keys holds the Ed25519 key the users service signs tokens with (one file per key:
add one to rotate, remove the old one a token lifetime later; docs/access.md).

The TLS Secrets (users-tls, webapp-tls, and postgres-tls for the postgres overlay: tls.crt,
tls.key, ca.crt) come from a fresh CA whose
key is thrown away: renewing means running this again for both, or letting cert-manager issue
them (deploy/examples/cert-manager.yaml). Run it in the project's environment (cryptography):
`make k8s-secrets`, or `.tools/bin/uv run python scripts/k8s_secrets.py OVERLAY`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import secrets
import sys
from typing import Any

PART_OF = {"app.kubernetes.io/part-of": "userstack"}
DATABASE = "users"  # POSTGRES_APP_USER and POSTGRES_DB in deploy/overlays/postgres/postgres.yaml
DATABASE_HOST = "postgres"  # its Service, port 5432
# Where deploy/overlays/postgres/users-postgres.yaml mounts postgres-tls's ca.crt in the users pods.
DATABASE_CA_FILE = "/postgres-tls/ca.crt"
ADMIN = "admin"  # the first admin's username


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    """An Opaque Secret; stringData, so kubectl does the base64."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": PART_OF},
        "type": "Opaque",
        "stringData": data,
    }


def tls_secrets(namespace: str, postgres: bool = False) -> list[dict[str, Any]]:
    """users-tls (server and client usage) and webapp-tls (its client certificate), and with
    `postgres` postgres-tls (the database server's), one CA."""
    from testkit.certs import CertificateAuthority, Issued  # noqa: PLC0415 - needs cryptography

    ca = CertificateAuthority.create("userstack CA")
    headless = "users-headless"
    users = ca.issue(
        "users",
        dns_names=[
            headless,
            f"{headless}.{namespace}.svc",
            f"{headless}.{namespace}.svc.cluster.local",
            "localhost",
        ],
        ip_addresses=["127.0.0.1"],
        days=365,
    )
    webapp = ca.issue("webapp", dns_names=[f"webapp.{namespace}.svc.cluster.local"], days=365)

    def tls(name: str, issued: Issued) -> dict[str, Any]:
        item = secret(
            name,
            namespace,
            {
                "tls.crt": issued.cert_pem.decode(),
                "tls.key": issued.key_pem.decode(),
                "ca.crt": ca.cert_pem.decode(),
            },
        )
        item["type"] = "kubernetes.io/tls"
        return item

    made = [tls("users-tls", users), tls("webapp-tls", webapp)]
    if postgres:
        names = [DATABASE_HOST, f"{DATABASE_HOST}.{namespace}.svc"]
        names.append(f"{DATABASE_HOST}.{namespace}.svc.cluster.local")
        made.append(tls("postgres-tls", ca.issue(DATABASE_HOST, dns_names=names, days=365)))
    return made


def access_secrets(namespace: str) -> list[dict[str, Any]]:
    """users-admin (the first admin) and users-signing-keys (one fresh Ed25519 key)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return [
        secret(
            "users-admin", namespace, {"username": ADMIN, "password": secrets.token_urlsafe(24)}
        ),
        secret("users-signing-keys", namespace, {f"signing-{stamp}.pem": pem.decode()}),
    ]


def overlay_secrets(overlay: str, namespace: str) -> list[dict[str, Any]]:
    """The Secrets the overlay's pods reference, each value drawn from `secrets`."""
    # The webapp signs CSRF tokens with it: 43 URL-safe characters (its minimum is 32).
    items = [secret("webapp", namespace, {"secret-key": secrets.token_urlsafe(32)})]
    items += tls_secrets(namespace, postgres=overlay == "postgres")
    items += access_secrets(namespace)
    if overlay == "postgres":
        # The superuser's (never given to the service) and the service role's; hex: nothing to
        # escape inside the URL.
        admin, password = secrets.token_hex(24), secrets.token_hex(24)
        url = (
            f"postgresql://{DATABASE}:{password}@{DATABASE_HOST}:5432/{DATABASE}"
            f"?sslmode=verify-full&sslrootcert={DATABASE_CA_FILE}"
        )
        items.append(secret("postgres", namespace, {"password": admin, "app-password": password}))
        items.append(secret("users-database", namespace, {"url": url}))
    return items


def main() -> None:
    """Prints a v1 List of the overlay's Secrets as JSON (which kubectl reads as YAML)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", choices=["sqlite", "postgres"])
    parser.add_argument("--namespace", default="userstack")
    args = parser.parse_args()
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": overlay_secrets(args.overlay, args.namespace),
    }
    json.dump(listing, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
