"""Print the Kubernetes Secrets an overlay of deploy/ needs, with fresh random values.

Nothing secret is ever written to disk or git: pipe the output straight to `kubectl create`,
which refuses to overwrite an existing Secret (PostgreSQL takes its password only when it first
initialises its volume, so silently replacing it would lock the users service out):

    kubectl apply -f deploy/base/namespace.yaml
    python3 scripts/k8s_secrets.py postgres | kubectl create -f -
    kubectl apply -k deploy/overlays/postgres

Standard library only, so it runs with any python3.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

PART_OF = {"app.kubernetes.io/part-of": "userstack"}
DATABASE = "users"  # POSTGRES_USER and POSTGRES_DB in deploy/overlays/postgres/postgres.yaml
DATABASE_HOST = "postgres:5432"  # its Service


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    """An Opaque Secret; stringData, so kubectl does the base64."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": PART_OF},
        "type": "Opaque",
        "stringData": data,
    }


def overlay_secrets(overlay: str, namespace: str) -> list[dict[str, Any]]:
    """The Secrets the overlay's pods reference, each value drawn from `secrets`."""
    # The webapp signs CSRF tokens with it: 43 URL-safe characters (its minimum is 32).
    items = [secret("webapp", namespace, {"secret-key": secrets.token_urlsafe(32)})]
    if overlay == "postgres":
        password = secrets.token_hex(24)  # hex: nothing to escape inside the URL
        url = f"postgresql://{DATABASE}:{password}@{DATABASE_HOST}/{DATABASE}"
        items.append(secret("postgres", namespace, {"password": password}))
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
