"""The stack is secure by default: mTLS on the published gRPC port with the dev certificates."""

from __future__ import annotations

import subprocess

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.stack import (
    CERTS,
    GRPCURL_TLS,
    ROOT,
    Stack,
    admin_token,
    client_credentials,
)

pytestmark = pytest.mark.docker
TIMEOUT = 10
GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")


def _check(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="users.v1.UserService"), timeout=TIMEOUT
    )
    status: int = reply.status
    return status


def test_grpcurl_with_the_dev_certificates_answers(stack: Stack) -> None:
    # A token too: grpcurl reads the schema by reflection, which needs one (docs/access.md).
    token = ["-H", f"authorization: Bearer {admin_token(stack.grpc_target)}"]
    command = [GRPCURL, *GRPCURL_TLS, *token, stack.grpc_target, "grpc.health.v1.Health/Check"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert '"status": "SERVING"' in result.stdout


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["-plaintext"], id="plaintext"),
        pytest.param([f"-cacert={CERTS / 'ca.pem'}"], id="no-client-certificate"),
        pytest.param([], id="untrusted-ca"),  # the system roots do not trust the dev CA
    ],
)
def test_grpcurl_without_mtls_is_refused(stack: Stack, flags: list[str]) -> None:
    command = [GRPCURL, *flags, stack.grpc_target, "list"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "users.v1.UserService" not in result.stdout


def test_plaintext_client_is_refused_on_the_published_port(stack: Stack) -> None:
    with grpc.insecure_channel(stack.grpc_target) as channel, pytest.raises(grpc.RpcError) as err:
        _check(channel)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE


def test_mtls_client_is_served(stack: Stack) -> None:
    with grpc.secure_channel(stack.grpc_target, client_credentials()) as channel:
        assert _check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_the_users_container_probe_passes_over_mtls(stack: Stack) -> None:
    probe = stack.exec("users", "users-healthcheck", "--service", "users.v1.UserService")
    assert probe.returncode == 0, probe.stderr
    assert "SERVING" in probe.stdout


def test_webapp_end_to_end_over_mtls_with_its_identity_logged(stack: Stack, unique: str) -> None:
    request_id = f"{unique}-tls"  # the webapp passes it on: it finds the users service's line
    headers = {**stack.admin_headers, "x-request-id": request_id}
    with httpx.Client(base_url=stack.http_url, timeout=10, headers=headers) as http:
        created = http.post("/api/v1/users", json={"username": f"{unique}-tls"})
        assert created.status_code == 201, created.text
        assert http.get(f"/api/v1/users/{created.json()['id']}").status_code == 200
    logs = stack.compose("logs", "--no-color", "users").stdout
    line = next(
        line
        for line in logs.splitlines()
        if "CreateUser OK" in line and f'"request_id": "{request_id}"' in line
    )
    assert '"peer_identity": "webapp,webapp.userstack.svc.cluster.local"' in line
