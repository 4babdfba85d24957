"""The Kubernetes manifests in deploy/ agree with the code they deploy (no cluster needed).

No cluster is reachable here, so the manifests are checked against the real services instead:
their environment parses with each service's own settings, the users pod's gRPC probes get
SERVING from a real server, and the webapp's HTTP probes name routes the real app serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from users_service.config import Settings as UsersSettings
from users_service.server import UsersServer
from webapp.app import create_app
from webapp.config import Settings as WebappSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVING = health_pb2.HealthCheckResponse.SERVING


def pod(name: str) -> dict[str, Any]:
    """The pod spec of the Deployment `name` in deploy/<name>.yaml."""
    documents = yaml.safe_load_all((DEPLOY / f"{name}.yaml").read_text())
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    return dict(deployment["spec"]["template"]["spec"])


def container(name: str) -> dict[str, Any]:
    """The one container of the Deployment `name`."""
    (spec,) = pod(name)["containers"]
    return dict(spec)


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """The container's literal env values; secrets get a stand-in of a valid shape."""
    return {e["name"]: e.get("value", "s" * 43) for e in spec["env"]}


def probes(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind in spec:
            yield spec[kind]


def container_port(spec: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in spec["ports"] if p["name"] == port))


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"
    )


async def test_users_grpc_probes_get_serving_from_a_real_server(tmp_path: Path) -> None:
    spec = container("users")
    settings = UsersSettings.from_env(environment(spec))
    port = int(settings.listen_address.rsplit(":", 1)[1])
    assert {container_port(spec, p["grpc"]["port"]) for p in probes(spec)} == {port}

    local = UsersSettings.from_env(
        {**environment(spec), "USERS_LISTEN_ADDRESS": "127.0.0.1:0",
         "USERS_DATABASE_PATH": str(tmp_path / "users.db")}
    )  # fmt: skip
    server = UsersServer(local)
    bound = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for probe in probes(spec):
                request = health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", ""))
                response = await health.Check(request, timeout=5)
                assert response.status == SERVING, probe
    finally:
        await server.drain(grace=0)


def test_webapp_http_probes_name_routes_of_the_real_app() -> None:
    spec = container("webapp")
    settings = WebappSettings.from_env(environment(spec))
    routes = create_app(settings).openapi()["paths"]
    for probe in probes(spec):
        assert "get" in routes[probe["httpGet"]["path"]], probe
        assert container_port(spec, probe["httpGet"]["port"]) == settings.port


@pytest.mark.parametrize("name", ["users", "webapp"])
def test_pods_are_hardened_like_the_compose_services(name: str) -> None:
    pod_spec = pod(name)
    (spec,) = pod_spec["containers"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "limits" in spec["resources"]
    assert spec["image"] == f"userstack/{name}:dev"
