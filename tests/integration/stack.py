"""The compose stack under test: its project, published ports, and docker/compose helpers."""

from __future__ import annotations

import functools
import json
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
from users.v1 import users_pb2, users_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
SCALE_FILE = ROOT / "compose.scale.yaml"
OBSERVABILITY_FILE = ROOT / "compose.observability.yaml"
SERVICES = ("users", "webapp")
APP_UID = "10001"
# scripts/certs.py writes these before the stack starts; the published port requires mTLS.
CERTS = ROOT / "certs"
# The first admin every stack under test starts with (compose: USERS_ADMIN_*).
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = secrets.token_urlsafe(18)
GRPCURL_TLS = (
    f"-cacert={CERTS / 'ca.pem'}",
    f"-cert={CERTS / 'client.pem'}",
    f"-key={CERTS / 'client.key'}",
)


def ensure_certs() -> None:
    """The development CA and certificates in certs/, the services' keys readable by APP_UID."""
    subprocess.run(
        [sys.executable, "-m", "scripts.certs", "--uid", APP_UID],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )


def client_credentials(client: str | None = "client", *, admin_at: str | None = None) -> Any:
    """Channel credentials trusting the dev CA, presenting certs/<client>.pem (None: no cert);
    with `admin_at` (a replica's target), every call carries the first admin's token."""
    key = None if client is None else (CERTS / f"{client}.key").read_bytes()
    cert = None if client is None else (CERTS / f"{client}.pem").read_bytes()
    transport = grpc.ssl_channel_credentials((CERTS / "ca.pem").read_bytes(), key, cert)
    if admin_at is None:
        return transport
    target = admin_at

    def add_token(_context: Any, callback: Any) -> None:
        # Signed in on the first call that needs it (a health-only channel never does).
        callback((("authorization", f"Bearer {admin_token(target)}"),), None)

    return grpc.composite_channel_credentials(transport, grpc.metadata_call_credentials(add_token))


@functools.cache
def admin_token(target: str) -> str:
    """The first admin's token, signed in at `target` as `make token` does (once per target)."""
    with grpc.secure_channel(target, client_credentials()) as channel:
        request = users_pb2.SignInRequest(username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
        reply = users_pb2_grpc.AuthServiceStub(channel).SignIn(request, timeout=30)
    return str(reply.access_token)


def tls_channel(target: str, *, anonymous: bool = False, **kwargs: Any) -> grpc.Channel:
    """A channel to the stack's published port, over mTLS with the developer's certificate,
    every call carrying the first admin's token unless `anonymous`."""
    credentials = client_credentials(admin_at=None if anonymous else target)
    return grpc.secure_channel(target, credentials, **kwargs)


def docker_time(raw: str) -> datetime:
    """Parses Docker's RFC 3339 times (nanoseconds, `Z`) into an aware datetime."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", raw).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed)


def drain_began(log: str) -> datetime:
    """When the last drain in a service's log began: its "...draining" line's time."""
    times = [
        datetime.fromisoformat(entry["time"])
        for entry in (json.loads(line) for line in log.splitlines() if line.startswith("{"))
        if str(entry.get("message", "")).endswith("draining")
    ]
    assert times, f"no draining line in:\n{log}"
    return times[-1]


def wall_time(moment: float) -> datetime:
    """A time.time() as an aware datetime, to compare with drain_began()."""
    return datetime.fromtimestamp(moment, UTC)


@dataclass
class Stack:
    """One running compose project, reached only from outside through its published ports.

    Example:
        >>> stack.compose("restart", "users")  # doctest: +SKIP
        >>> stack.wait_health("users", "healthy")  # doctest: +SKIP
    """

    project: str
    grpc_port: int
    http_port: int
    env: dict[str, str]
    files: tuple[Path, ...] = (COMPOSE_FILE,)
    startup: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @functools.cached_property
    def admin_headers(self) -> dict[str, str]:
        """`Authorization: Bearer` with the first admin's token (signed in once per stack)."""
        return {"authorization": f"Bearer {self.sign_in()}"}

    def sign_in(self, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> str:
        """An access token from the stack's users service, signed in through the webapp."""
        body = {"username": username, "password": password}
        response = httpx.post(f"{self.http_url}/api/v1/auth/signin", json=body, timeout=10)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Runs `docker compose -p PROJECT ARGS` and fails on a non-zero exit."""
        files = [arg for path in self.files for arg in ("-f", str(path))]
        command = ["docker", "compose", "-p", self.project, *files, *args]
        return run(command, env=self.env, timeout=timeout)

    def container(self, service: str) -> str:
        """The id of the service's (only) container, running or not."""
        [container_id] = self.containers(service)
        return container_id

    def containers(self, service: str) -> list[str]:
        """The ids of the service's containers (its replicas), running or not."""
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert ids, f"no container for {service} in {self.project}"
        return ids

    def inspect(self, service: str) -> dict[str, Any]:
        """`docker inspect` of the service's container."""
        output = run(["docker", "inspect", self.container(service)]).stdout
        info: dict[str, Any] = json.loads(output)[0]
        return info

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess[str]:
        """Runs a command in the service's container; the caller checks the exit code."""
        return run(["docker", "exec", self.container(service), *command], check=False)

    def run_docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs `docker ARGS` (kill, stop: the engine's own view of a container)."""
        return run(["docker", *args], timeout=120)

    def health(self, service: str) -> str:
        """starting, healthy, unhealthy, or the container's state when it is not running."""
        state = self.inspect(service)["State"]
        return str(state["Health"]["Status"]) if state["Running"] else str(state["Status"])

    def wait_health(self, service: str, wanted: str, timeout: float = 60) -> None:
        """Polls the container's health (Docker's own healthcheck) until it is `wanted`."""
        deadline = time.monotonic() + timeout
        while (status := self.health(service)) != wanted:
            assert time.monotonic() < deadline, f"{service} is {status}, not {wanted}"
            time.sleep(0.2)

    def wait_exit(self, service: str, timeout: float = 60) -> int:
        """Waits for the service's container to exit; its exit code."""
        container_id = self.container(service)
        code = run(["docker", "wait", container_id], timeout=timeout).stdout.strip()
        return int(code)


def run(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """A subprocess with its output captured (and shown when it fails)."""
    result = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result
