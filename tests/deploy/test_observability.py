"""Metrics in the manifests: a metrics port on each pod, set in its settings, scrape annotations,
a Service and a ServiceMonitor example that find it (the NetworkPolicies: test_network_policies)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    NAME_LABEL,
    OVERLAYS,
    all_containers,
    find,
    of_kind,
    render,
)

METRICS_PORT = 9464
SERVICES = {"users": "USERS_METRICS_LISTEN_ADDRESS", "webapp": "WEBAPP_METRICS_LISTEN_ADDRESS"}


def config_of(resources: tuple[Any, ...], name: str) -> dict[str, str]:
    maps = [m for m in of_kind(resources, "ConfigMap") if m["metadata"]["name"].startswith(name)]
    assert len(maps) == 1, [m["metadata"]["name"] for m in maps]
    data: dict[str, str] = maps[0]["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_each_pod_serves_metrics_on_a_port_of_its_own_with_scrape_annotations(
    overlay: str, service: str
) -> None:
    resources = render(overlay)
    deployment = find(resources, "Deployment", service)
    [container] = all_containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORT
    assert list(ports.values()).count(METRICS_PORT) == 1, "the metrics port is shared"
    assert config_of(resources, service)[SERVICES[service]] == f"[::]:{METRICS_PORT}"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_monitor_example_finds_each_metrics_port(overlay: str) -> None:
    resources = render(overlay)
    monitors = list(yaml.safe_load_all((DEPLOY / "examples" / "servicemonitor.yaml").read_text()))
    assert {m["metadata"]["name"] for m in monitors} == set(SERVICES)
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        services = [
            s for s in of_kind(resources, "Service")
            if wanted.items() <= s["metadata"].get("labels", {}).items()
        ]  # fmt: skip
        assert len(services) == 1, (monitor["metadata"]["name"], services)
        [service] = services
        [endpoint] = monitor["spec"]["endpoints"]
        port_names = [p["name"] for p in service["spec"]["ports"]]
        assert port_names == [endpoint["port"]] == ["metrics"]
        # The Service's pods are the workload's: the name label picks them.
        assert service["spec"]["selector"] == {NAME_LABEL: monitor["metadata"]["name"]}
