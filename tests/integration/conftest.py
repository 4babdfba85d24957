"""Starts the compose stack once per session (testcontainers DockerCompose); always removes it."""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from testcontainers.compose import DockerCompose
from testkit.ports import free_port
from users.v1 import users_pb2_grpc

from tests.integration.stack import (
    ADMIN_PASSWORD,
    COMPOSE_FILE,
    OBSERVABILITY_FILE,
    ROOT,
    SCALE_FILE,
    SERVICES,
    Stack,
    ensure_certs,
    run,
    tls_channel,
)

# Destructive tests (stopping and killing containers) run last, on a stack the others are done with;
# then the scaled variant, on a stack of its own.
MODULE_ORDER = (
    "test_compose",
    "test_access",
    "test_grpc",
    "test_http",
    "test_persistence",
    "test_faults",
    "test_drain",
    "test_scaled",
    "test_observability",
)
NO_DOCKER: list[str] = []
STACK_START_SECONDS = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the integration tests `docker` and runs them in MODULE_ORDER."""
    here = os.path.dirname(__file__)
    ours = [item for item in items if str(item.path).startswith(here)]
    for item in ours:
        item.add_marker(pytest.mark.docker)

    def rank(item: pytest.Item) -> int:
        stem = item.path.stem
        return MODULE_ORDER.index(stem) if stem in MODULE_ORDER else -1

    if ours:
        others = [item for item in items if item not in ours]
        ours.sort(key=rank)
        # A module's first test also pays for its stack: base image, wheels, cold builds.
        firsts = {item.path: item for item in reversed(ours)}
        for item in firsts.values():
            item.add_marker(pytest.mark.timeout(STACK_START_SECONDS))
        items[:] = others + ours


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Says loudly that the integration tests did not run, when no engine answered."""
    if NO_DOCKER:
        terminalreporter.write_sep("!", "INTEGRATION TESTS NOT RUN", red=True, bold=True)
        terminalreporter.write_line(f"no Docker Engine answered: {NO_DOCKER[0]}", red=True)


def _docker_problem() -> str | None:
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return None if result.returncode == 0 else result.stderr.strip() or "docker info failed"


def _build_input(script: str, **env: str) -> str:
    """The KEY=value line a build-input script prints last (progress goes to stderr)."""
    output = run([str(ROOT / "scripts" / script)], env={**os.environ, **env}, timeout=900)
    return output.stdout.strip().splitlines()[-1].partition("=")[2]


@functools.cache
def _base_image() -> str:
    """Wheelhouse and base image for offline builds (scripts/build-inputs.sh)."""
    return _build_input("build-inputs.sh")


def _stack_env(project: str) -> dict[str, str]:
    return {
        "COMPOSE_PROJECT_NAME": project,
        "BASE_IMAGE": _base_image(),
        "WEBAPP_SECRET_KEY": secrets.token_urlsafe(32),
        "USERSTACK_BIND_ADDRESS": "127.0.0.1",
        "USERSTACK_GRPC_PORT": str(free_port()),
        "USERSTACK_HTTP_PORT": str(free_port()),
        "USERS_GRACE_PERIOD_SECONDS": "10",
        # The first admin (stack.ADMIN_USERNAME); its tokens outlive the test session.
        "USERS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "USERS_TOKEN_TTL_SECONDS": "7200",
        # The tests' load comes from one address: the per-caller write rates are off
        # (docs/limits.md; their own tests are the services').
        "USERS_WRITES_PER_SECOND": "0",
        "WEBAPP_WRITES_PER_SECOND": "0",
        # DockerCompose starts no reaper, but a testcontainers container here must not pull one.
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    }


def _require_docker() -> None:
    problem = _docker_problem()
    if problem:
        NO_DOCKER.append(problem)
        print(f"\nWARNING: no Docker Engine answers ({problem}); skipping", file=sys.stderr)
        pytest.skip(f"NO DOCKER ENGINE ANSWERS ({problem}): the compose stack was not tested")


@contextmanager
def _compose_stack(name: str, files: tuple[Path, ...], **extra_env: str) -> Iterator[Stack]:
    """A compose project of its own, built and healthy; removed with its volumes afterwards."""
    _require_docker()
    ensure_certs()
    project = f"userstack-{name}-{uuid.uuid4().hex[:8]}"
    ours = _stack_env(project)
    if extra_env:
        ours.update(extra_env)
    stack = Stack(
        project,
        int(ours["USERSTACK_GRPC_PORT"]),
        int(ours["USERSTACK_HTTP_PORT"]),
        {**os.environ, **ours},
        files,
    )
    # The `finally` runs after a failed `up` and after crashed tests: nothing is left behind.
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in ours.items():
                patch.setenv(key, value)
            compose = DockerCompose(
                ROOT, compose_file_name=[path.name for path in files], build=True, wait=True
            )
            try:
                compose.start()
            except subprocess.CalledProcessError as error:
                logs = stack.compose("logs", "--no-color").stdout
                pytest.fail(f"compose up failed: {error.stderr!r}\n{logs}")
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack (compose.yaml), built and healthy, under a project name of its own."""
    with _compose_stack("it", (COMPOSE_FILE,)) as stack:
        # Health logs keep only the last few probes: keep the start-up record for the order test.
        stack.startup = {service: stack.inspect(service) for service in SERVICES}
        yield stack


@pytest.fixture(scope="module")
def scaled_stack() -> Iterator[Stack]:
    """The scaled variant (compose.scale.yaml): three users replicas on PostgreSQL."""
    _require_docker()
    postgres_image = _build_input("postgres-image.sh", BASE_IMAGE=_base_image())
    with _compose_stack(
        "scaled",
        (COMPOSE_FILE, SCALE_FILE),
        POSTGRES_IMAGE=postgres_image,
        POSTGRES_PASSWORD=secrets.token_urlsafe(24),
        POSTGRES_APP_PASSWORD=secrets.token_urlsafe(24),
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def observed_stack() -> Iterator[tuple[Stack, int]]:
    """The scaled variant with compose.observability.yaml: metrics ports and a Prometheus
    scraping every replica; (the stack, Prometheus's published port)."""
    _require_docker()
    postgres_image = _build_input("postgres-image.sh", BASE_IMAGE=_base_image())
    prometheus_port = free_port()
    with _compose_stack(
        "observed",
        (COMPOSE_FILE, SCALE_FILE, OBSERVABILITY_FILE),
        POSTGRES_IMAGE=postgres_image,
        POSTGRES_PASSWORD=secrets.token_urlsafe(24),
        POSTGRES_APP_PASSWORD=secrets.token_urlsafe(24),
        USERSTACK_PROMETHEUS_PORT=str(prometheus_port),
    ) as stack:
        yield stack, prometheus_port


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    """A fresh channel per test (no reconnect backoff inherited from a stopped container)."""
    with tls_channel(stack.grpc_target) as channel:
        yield channel


@pytest.fixture
def users(channel: grpc.Channel) -> users_pb2_grpc.UserServiceStub:
    """The users service's stub, through the published gRPC port."""
    return users_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client for the webapp, through the published port, signed in as the admin."""
    with httpx.Client(base_url=stack.http_url, timeout=10, headers=stack.admin_headers) as client:
        yield client


@pytest.fixture
def unique() -> str:
    """A short prefix that keeps one test's usernames apart from every other test's."""
    return f"t{uuid.uuid4().hex[:10]}"
