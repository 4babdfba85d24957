"""`userstack` against the compose stack: from the host with no flags (make up's certs/ found
from the repository), and from inside the users image (its own USERS_TLS_* files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.stack import ROOT, Stack, admin_token

SEED = ROOT / "clients" / "cli" / "seed" / "users.ndjson"


def userstack(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The host's CLI, run from the repository root, as a developer after `make up` would (with
    the first admin's token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERSTACK_")}
    return subprocess.run(
        [str(Path(sys.executable).parent / "userstack"), "-o", "json", *args],
        env={
            **env,
            "USERSTACK_TARGET": stack.grpc_target,
            "USERSTACK_TOKEN": admin_token(stack.grpc_target),  # as after `userstack login`
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_reaches_the_stack_over_mtls_with_no_flags(stack: Stack, unique: str) -> None:
    health = userstack(stack, "health")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"
    created = userstack(stack, "create", f"{unique}-cli", "--email", "cli@example.com")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["username"] == f"{unique}-cli"


def test_make_seed_loads_the_demo_users_into_the_stack(stack: Stack) -> None:
    seeded = userstack(stack, "import", str(SEED))
    assert seeded.returncode == 0, seeded.stderr
    report = json.loads(seeded.stdout)
    assert report["created"] + report["existing"] == 120
    assert report["rejected"] == 0
    listed = userstack(stack, "list", "--prefix", "ada.")
    assert listed.returncode == 0, listed.stderr


def test_the_users_image_carries_the_cli(stack: Stack) -> None:
    inside = stack.exec("users", "userstack", "-o", "json", "health")
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["status"] == "SERVING"
