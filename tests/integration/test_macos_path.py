"""`make up` with a PATH shaped like macOS's (testkit.macos_path) reaches a healthy stack.

No GNU `timeout` or `sha256sum`, BSD-compatible flags only (a shim refuses the rest and logs it),
no apt-get or debootstrap: what Docker Desktop on a Mac gives the scripts. The build inputs run
first on their own (the registry check, the wheelhouse, the base image), then `make up` does
them again on its way to a healthy stack, under a project and ports of its own.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.macos_path import macos_path, violations
from testkit.ports import free_port

from tests.integration.stack import ROOT, run, tls_channel

SERVING = health_pb2.HealthCheckResponse.SERVING


def test_make_up_on_a_macos_shaped_path_reaches_a_healthy_stack(tmp_path: Path) -> None:
    path = macos_path(tmp_path / "bin")
    project = f"userstack-macos-{uuid.uuid4().hex[:8]}"
    grpc_port = free_port()
    env = {
        "PATH": str(path),
        "HOME": os.environ.get("HOME", "/root"),
        "COMPOSE_PROJECT_NAME": project,
        "USERSTACK_BIND_ADDRESS": "127.0.0.1",
        "USERSTACK_GRPC_PORT": str(grpc_port),
        "USERSTACK_HTTP_PORT": str(free_port()),
        "DOCKER_CONFIG": os.environ.get(
            "DOCKER_CONFIG", f"{os.environ.get('HOME', '/root')}/.docker"
        ),
    }
    try:
        inputs = run([str(ROOT / "scripts" / "build-inputs.sh")], env=env, timeout=1200)
        assert inputs.stdout.strip().splitlines()[-1].startswith("BASE_IMAGE=")
        up = run(["make", "up"], env=env, timeout=1200)
        assert "userstack is up and healthy" in up.stdout
        assert violations(path) == []
        # Anonymous: health needs no token, and this stack's first admin has .env's password,
        # not the one the other integration stacks are started with.
        with tls_channel(f"127.0.0.1:{grpc_port}", anonymous=True) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="users.v1.UserService")
            assert health.Check(request, timeout=10).status == SERVING
    finally:
        files = ["-f", str(ROOT / "compose.yaml")]
        run(
            ["docker", "compose", "-p", project, *files, "down", "--volumes"],
            env={**os.environ, **env, "PATH": os.environ["PATH"]},
            check=False,
        )
