"""deploy/ agrees with the code it deploys: real settings, a real server, the real app.

No cluster is reachable here, so each overlay's pod environment is parsed by the service's own
settings (with the Secrets scripts/k8s_secrets.py makes), the users pod's gRPC probes are sent
to a real server started with that environment, and the webapp's HTTP probes name routes the
real app serves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import users_service.config
import webapp.config
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plumbing.tokens import generate_key_file
from testkit.certs import CertificateAuthority
from users_service.config import Settings as UsersSettings
from users_service.server import UsersServer
from webapp.app import create_app
from webapp.config import Settings as WebappSettings

from tests.deploy.manifests import OVERLAYS, container, environment, render

SERVING = health_pb2.HealthCheckResponse.SERVING
CONFIG_MODULES = {"users": users_service.config, "webapp": webapp.config}


def names_read_by(service: str) -> set[str]:
    """The USERS_* / WEBAPP_* names the service's config modules read (their string literals)."""
    config = Path(str(CONFIG_MODULES[service].__file__))
    # The users service reads its access settings in a module of their own (auth_config.py).
    sources = [config, *config.parent.glob("auth_config.py")]
    found = (re.findall(rf'"({service.upper()}_[A-Z0-9_]+)"', p.read_text()) for p in sources)
    return {name for names in found for name in names}


def probes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")]


def container_port(spec: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in spec["ports"] if p["name"] == port))


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", ["users", "webapp"])
def test_every_variable_set_is_one_the_service_reads(overlay: str, service: str) -> None:
    # A misspelt or renamed variable would be ignored in silence, the default used instead.
    # (USERS_DATABASE_URL: read once the PostgreSQL store's settings are merged.)
    env = environment(overlay, container(render(overlay), service))
    assert set(env) - names_read_by(service) == set()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_environment_parses_with_each_service_settings(overlay: str) -> None:
    users = UsersSettings.from_env(environment(overlay, container(render(overlay), "users")))
    webapp_settings = WebappSettings.from_env(
        environment(overlay, container(render(overlay), "webapp"))
    )
    assert users.listen_address == "[::]:50051"
    # Every interface of the pod: the Service and the kubelet's probes come from outside it.
    assert (webapp_settings.host, webapp_settings.port) == ("0.0.0.0", 8000)  # noqa: S104


def _local_tls(tmp_path: Path) -> dict[str, str]:
    """The pod's TLS settings pointed at files made here (the Secret's tls.crt, tls.key, ca.crt)."""
    ca = CertificateAuthority.create("deploy test CA")
    cert, key = ca.issue("users", dns_names=["localhost"]).write(tmp_path / "tls")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    generate_key_file(tmp_path / "signing-keys")  # the users-signing-keys Secret's file
    return {
        "USERS_TLS_CERT_FILE": str(cert),
        "USERS_TLS_KEY_FILE": str(key),
        "USERS_TLS_CA_FILE": str(tmp_path / "ca.crt"),
        "USERS_SIGNING_KEYS_DIR": str(tmp_path / "signing-keys"),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_users_grpc_probes_get_serving_from_a_real_server(
    overlay: str, tmp_path: Path
) -> None:
    spec = container(render(overlay), "users")
    env = environment(overlay, spec)
    settings = UsersSettings.from_env(env)
    # The kubelet's probes speak plaintext: they go to the health-only port, not the mTLS one.
    health_port = int(settings.health_listen_address.rsplit(":", 1)[1])
    assert {container_port(spec, p["grpc"]["port"]) for p in probes(spec)} == {health_port}
    assert settings.tls_client_auth == "require"

    # The pod's environment, on loopback, with certificates and a database of this test's own.
    local = UsersSettings.from_env(
        {
            **env,
            "USERS_LISTEN_ADDRESS": "127.0.0.1:0",
            "USERS_HEALTH_LISTEN_ADDRESS": "127.0.0.1:0",
            "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}",
            **_local_tls(tmp_path),
        }
    )
    server = UsersServer(local)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for probe in probes(spec):
                request = health_pb2.HealthCheckRequest(service=probe["grpc"]["service"])
                response = await health.Check(request, timeout=5)
                assert response.status == SERVING, probe
    finally:
        await server.drain(grace=0)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webapp_http_probes_name_routes_of_the_real_app(overlay: str) -> None:
    spec = container(render(overlay), "webapp")
    settings = WebappSettings.from_env(environment(overlay, spec))
    routes = create_app(settings).openapi()["paths"]
    for probe in probes(spec):
        assert "get" in routes[probe["httpGet"]["path"]], probe
        assert container_port(spec, probe["httpGet"]["port"]) == settings.port
