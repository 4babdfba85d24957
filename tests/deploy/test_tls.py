"""deploy/ over TLS: certificates from Secrets mounted read-only, Services' appProtocol, the
Ingress terminating TLS, and the Secrets scripts/k8s_secrets.py makes for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from plumbing.tls import TlsFiles, load_material

from tests.deploy.manifests import (
    OVERLAYS,
    container,
    find,
    generated_secrets,
    pod_spec,
    render,
)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("name", "secret"), [("users", "users-tls"), ("webapp", "webapp-tls")])
def test_tls_files_come_from_a_secret_mounted_read_only(
    overlay: str, name: str, secret: str
) -> None:
    pod = pod_spec(find(render(overlay), "Deployment", name))
    [volume] = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == secret
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 10001  # the app's group reads the 0440 files
    [mount] = [m for m in container(render(overlay), name)["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/tls", "readOnly": True}
    assert "subPath" not in mount  # subPath mounts never see the kubelet's refresh


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_generated_tls_secrets_load_and_the_webapp_trusts_the_users_ca(overlay: str) -> None:
    data = {}
    for name in ("users-tls", "webapp-tls"):
        item = find(generated_secrets(overlay), "Secret", name)
        assert item["type"] == "kubernetes.io/tls"
        data[name] = item["stringData"]
        assert set(item["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert data["users-tls"]["ca.crt"] == data["webapp-tls"]["ca.crt"]


def test_generated_tls_secrets_are_valid_material(tmp_path: Path) -> None:
    root = tmp_path
    for name in ("users-tls", "webapp-tls"):
        data = find(generated_secrets("sqlite"), "Secret", name)["stringData"]
        for key, value in data.items():
            (root / f"{name}-{key}").write_text(value)
        files = TlsFiles(
            root / f"{name}-tls.crt", root / f"{name}-tls.key", root / f"{name}-ca.crt"
        )
        assert load_material(files).summary


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_users_service_says_tls_not_h2c(overlay: str) -> None:
    service = find(render(overlay), "Service", "users-headless")
    assert [p["appProtocol"] for p in service["spec"]["ports"]] == ["https"]
    # The health-only port is for the kubelet: no Service publishes it.
    assert all(p["port"] == 50051 for p in service["spec"]["ports"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_terminates_tls_from_a_secret(overlay: str) -> None:
    ingress = find(render(overlay), "Ingress", "webapp")
    [tls] = ingress["spec"]["tls"]
    assert tls["secretName"] == "webapp-ingress-tls"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in tls["hosts"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "webapp", "port": {"name": "http"}}
