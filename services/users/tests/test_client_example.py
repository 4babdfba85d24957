"""docs/client.md's example, run as written against a real server: plaintext, then mTLS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "client.md").read_text(), re.S)
    return str(blocks[0])


def _run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("created #")
    assert sum(line.startswith("streamed #") for line in lines) == 4
    assert "GetUser(999999999): NOT_FOUND: user 999999999 not found" in lines
    assert lines[-1] == "the watch ended at its deadline"


def test_the_client_example_runs_in_plaintext(
    spawn_server: Callable[..., Any], tmp_path: Path, admin_token: str
) -> None:
    server = spawn_server()
    script = tmp_path / "example.py"
    script.write_text(_example())
    _check(_run(script, {"USERSTACK_TARGET": server.target, "USERSTACK_TOKEN": admin_token}))
    line = server.wait_for_log(r'"request_id": "example-[0-9a-f]{12}"')
    assert "CreateUser" in line  # the request id the example sent is in the server's log


@pytest.mark.slow
def test_the_client_example_runs_over_mtls(
    spawn_server: Callable[..., Any], tmp_path: Path, admin_token: str
) -> None:
    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, "-m", "scripts.certs", "--dir", str(certs)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = spawn_server(
        USERS_LISTEN_ADDRESS="localhost:0",
        USERS_TLS_CERT_FILE=str(certs / "users.pem"),
        USERS_TLS_KEY_FILE=str(certs / "users.key"),
        USERS_TLS_CA_FILE=str(certs / "ca.pem"),
        USERS_TLS_CLIENT_AUTH="require",
    )
    script = tmp_path / "example.py"
    script.write_text(_example())
    env = {
        "USERSTACK_TARGET": f"localhost:{server.port}",
        "USERSTACK_CA_FILE": str(certs / "ca.pem"),
        "USERSTACK_CERT_FILE": str(certs / "client.pem"),
        "USERSTACK_KEY_FILE": str(certs / "client.key"),
        "USERSTACK_TOKEN": admin_token,
    }
    _check(_run(script, env))
    unset = _run(script, {"USERSTACK_TARGET": f"localhost:{server.port}", "USERSTACK_CA_FILE": ""})
    assert unset.returncode != 0  # plaintext is refused there
