"""arm64 by emulation: both images build for linux/arm64 and the users image serves under qemu.

`make test-arm64` (not `make test`: the emulated build takes many minutes, docs/platforms.md).
`make images PLATFORM=linux/arm64` builds userstack/users:dev-arm64 and userstack/webapp:dev-arm64
on an arm64 base (the official image where a registry answers, else a debootstrap --arch arm64
one) with aarch64 wheels; the users container then answers its health service SERVING, a
CreateUser/GetUser round trip over mTLS and its own health probe; its CPU is `aarch64` inside,
its image `arm64` to Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testkit.ports import free_port
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import CERTS, ROOT, ensure_certs, run, tls_channel

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(7200)]
PLATFORM = "linux/arm64"
TAG = "dev-arm64"
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
SERVING = health_pb2.HealthCheckResponse.SERVING
START_SECONDS = 600  # an emulated interpreter starts slowly; bounded, not slept


def engine_arch() -> str:
    return run(["docker", "version", "--format", "{{.Server.Arch}}"]).stdout.strip()


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Both images built for arm64 by `make images PLATFORM=linux/arm64`; name -> image."""
    if engine_arch() != "arm64" and not BINFMT.exists():
        pytest.fail(
            "no qemu-aarch64 in binfmt_misc: `make test-arm64` installs qemu-user-static",
            pytrace=False,
        )
    env = {**os.environ, "PLATFORM": PLATFORM, "USERSTACK_TAG": TAG}
    started = time.monotonic()
    result = subprocess.run(
        ["nice", "-n", "15", "make", "images"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=6000,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\narm64 images built in {time.monotonic() - started:.0f} s:\n{result.stderr}")
    return {service: f"userstack/{service}:{TAG}" for service in ("users", "webapp")}


@pytest.fixture(scope="module")
def users(images: dict[str, str]) -> Iterator[tuple[str, str]]:
    """The arm64 users image running (mTLS, as compose runs it); (container id, target)."""
    ensure_certs()
    port = free_port()
    command = ["docker", "run", "--detach", "--platform", PLATFORM, "--name"]
    command += [f"userstack-arm64-{uuid.uuid4().hex[:8]}", "-p", f"127.0.0.1:{port}:50051"]
    command += ["--no-healthcheck"]  # its 5 s timeout is native-sized: see the last test
    command += ["-v", f"{CERTS}:/certs:ro"]
    for name, value in {
        "USERS_TLS_CERT_FILE": "/certs/users.pem",
        "USERS_TLS_KEY_FILE": "/certs/users.key",
        "USERS_TLS_CA_FILE": "/certs/ca.pem",
        "USERS_TLS_CLIENT_AUTH": "require",
    }.items():
        command += ["-e", f"{name}={value}"]
    container = run([*command, images["users"]]).stdout.strip()
    try:
        yield container, f"127.0.0.1:{port}"
    finally:
        logs = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, check=False
        )
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        run(["docker", "rm", "--force", "--volumes", container], check=False)


def test_both_images_are_arm64(images: dict[str, str]) -> None:
    for image in images.values():
        info = json.loads(run(["docker", "image", "inspect", image]).stdout)[0]
        assert (info["Os"], info["Architecture"]) == ("linux", "arm64"), image


def test_the_emulated_users_container_serves_health_and_a_round_trip(
    users: tuple[str, str],
) -> None:
    container, target = users
    assert run(["docker", "exec", container, "uname", "-m"]).stdout.strip() == "aarch64"
    with tls_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="users.v1.UserService")
        status = health.Check(request, timeout=START_SECONDS, wait_for_ready=True).status
        assert status == SERVING
        stub = users_pb2_grpc.UserServiceStub(channel)
        created = stub.CreateUser(
            users_pb2.CreateUserRequest(username="arm", email="arm@example.com"), timeout=60
        )
        got = stub.GetUser(users_pb2.GetUserRequest(id=created.id), timeout=60)
    assert got == created
    assert (got.username, got.email) == ("arm", "arm@example.com")


def test_the_images_own_health_probe_says_serving_under_emulation(
    users: tuple[str, str],
) -> None:
    """users-healthcheck, the image's HEALTHCHECK command, run by hand with room to start.

    Docker's own HEALTHCHECK gives it 5 s: too short under qemu here, where the emulated
    interpreter takes longer than that to import grpcio (docs/platforms.md); on a real arm64
    engine it is native.
    """
    container, _ = users
    started = time.monotonic()
    probe = ["users-healthcheck", "--service", "users.v1.UserService", "--timeout", "60"]
    result = run(["docker", "exec", container, *probe], timeout=START_SECONDS, check=False)
    print(f"\nusers-healthcheck under emulation: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
