"""The properties deploy/ promises, asserted on the rendered overlays so no edit drops them.

Pod Security "restricted" on every pod, probes that mean what deploy/README.md says, grace
periods that outlast preStop plus the drain, disruption budgets, the headless Service, replicas
and strategy per overlay. (NetworkPolicies: test_network_policies.py.)
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
from users_service.config import Settings as UsersSettings
from users_service.health import SERVICE_NAME
from users_service.server import DEREGISTER_SECONDS, LAME_DUCK_SECONDS
from webapp.config import Settings as WebappSettings

from tests.deploy.manifests import (
    NAMESPACE,
    OVERLAYS,
    Resource,
    all_containers,
    container,
    environment,
    find,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    selects,
    workloads,
)

# The uid our images run as (the Dockerfile's runtime stages), and the official postgres image's.
UIDS = {"users": 10001, "webapp": 10001, "postgres": 999}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
# Volume types the "restricted" profile admits.
RESTRICTED_VOLUMES = {"emptyDir", "persistentVolumeClaim", "configMap", "secret", "projected",
                      "downwardAPI", "ephemeral", "csi"}  # fmt: skip
# After the drain (users) or uvicorn's graceful shutdown (webapp) the process still has to
# exit: the users server flushes health Watch streams (0.1 s) and closes its store, the webapp
# closes its channel. deploy/README.md, "Grace", counts 1 s for it.
EXIT_SECONDS = 1.0
# How long a terminating pod may still get new traffic: CoreDNS's answers for the headless
# Service live 5 s (its TTL) after the EndpointSlice drops the pod (about 1 s); kube-proxy and
# ingress controllers follow the EndpointSlice within a few seconds.
STALE_TRAFFIC_SECONDS = {"users": 6, "webapp": 5}


def users_drain_seconds(overlay: str) -> float:
    """SIGTERM to exit: NOT_SERVING while serving, lame duck, stop(grace), exit (server.drain)."""
    settings = UsersSettings.from_env(environment(overlay, container(render(overlay), "users")))
    drain = DEREGISTER_SECONDS + LAME_DUCK_SECONDS + settings.grace_period_seconds
    return drain + EXIT_SECONDS


def webapp_drain_seconds(overlay: str) -> float:
    """SIGTERM to exit: uvicorn's graceful shutdown, then exit (services/webapp server.py)."""
    settings = WebappSettings.from_env(environment(overlay, container(render(overlay), "webapp")))
    return settings.shutdown_grace_seconds + EXIT_SECONDS


DRAIN = {"users": users_drain_seconds, "webapp": webapp_drain_seconds}


def named_workloads() -> list[tuple[str, str]]:
    return [
        (overlay, w["metadata"]["name"]) for overlay in OVERLAYS for w in workloads(render(overlay))
    ]


def workload(overlay: str, name: str) -> Resource:
    (match,) = [w for w in workloads(render(overlay)) if w["metadata"]["name"] == name]
    return match


@pytest.mark.parametrize(("overlay", "name"), named_workloads())
def test_pod_meets_pod_security_restricted(overlay: str, name: str) -> None:
    spec = pod_spec(workload(overlay, name))
    context = spec["securityContext"]
    # Nothing else (sysctls, supplementalGroups policy, ...) without a look at this test.
    assert set(context) <= {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == UIDS[name]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False  # a Service "webapp" would set WEBAPP_PORT
    for volume in spec.get("volumes", []):
        assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, volume
    for spec_c in all_containers(workload(overlay, name)):
        assert spec_c["securityContext"] == RESTRICTED_CONTAINER, spec_c["name"]
        assert not any("hostPort" in port for port in spec_c.get("ports", [])), spec_c["name"]


@pytest.mark.parametrize(("overlay", "name"), named_workloads())
def test_read_only_root_gets_an_emptydir_tmp_and_limits(overlay: str, name: str) -> None:
    spec = pod_spec(workload(overlay, name))
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    for spec_c in all_containers(workload(overlay, name)):
        mounts = {m["mountPath"]: m["name"] for m in spec_c["volumeMounts"]}
        assert mounts["/tmp"] in empty_dirs
        for bound in ("requests", "limits"):
            assert set(spec_c["resources"][bound]) == {"cpu", "memory"}, (spec_c["name"], bound)


@pytest.mark.parametrize(("overlay", "name"), named_workloads())
def test_every_container_has_startup_readiness_and_liveness_probes(overlay: str, name: str) -> None:
    for spec_c in all_containers(workload(overlay, name)):
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(spec_c), spec_c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_users_probes_ask_the_grpc_health_service(overlay: str) -> None:
    resources = render(overlay)
    spec = container(resources, "users")
    settings = UsersSettings.from_env(environment(overlay, spec))
    port = int(settings.health_listen_address.rsplit(":")[-1])  # plaintext, health alone
    # Readiness follows the API service: NOT_SERVING without a database and while draining.
    assert spec["readinessProbe"]["grpc"] == {"port": port, "service": SERVICE_NAME}
    # Liveness and startup ask the server as a whole (""), which never depends on the database:
    # a database outage must make replicas unready, never restart them all.
    assert spec["livenessProbe"]["grpc"] == {"port": port, "service": ""}
    assert spec["startupProbe"]["grpc"] == {"port": port, "service": ""}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webapp_probes_are_readyz_and_healthz(overlay: str) -> None:
    spec = container(render(overlay), "webapp")
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", ["users", "webapp"])
def test_grace_outlasts_prestop_and_drain(overlay: str, name: str) -> None:
    resources = render(overlay)
    spec = container(resources, name)
    pre_stop = spec["lifecycle"]["preStop"]
    # The native sleep action: our images promise no shell for an `exec: sleep`.
    assert set(pre_stop) == {"sleep"}
    sleep = pre_stop["sleep"]["seconds"]
    assert sleep >= STALE_TRAFFIC_SECONDS[name]
    drain = DRAIN[name](overlay)
    grace = pod_spec(find(resources, "Deployment", name))["terminationGracePeriodSeconds"]
    assert sleep + drain < grace, f"preStop {sleep} s + drain {drain} s >= grace {grace} s"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", ["users", "webapp"])
def test_liveness_does_not_restart_a_draining_pod(overlay: str, name: str) -> None:
    # A draining users server answers NOT_SERVING to "" too; a stopping webapp no longer
    # answers at all. The kubelet restarts after failureThreshold failures in a row: the first
    # may come just after SIGTERM, the last (failureThreshold - 1) periods later.
    resources = render(overlay)
    liveness = container(resources, name)["livenessProbe"]
    tolerated = (liveness["failureThreshold"] - 1) * liveness["periodSeconds"]
    assert tolerated > DRAIN[name](overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_deployment_has_a_disruption_budget_that_keeps_one_pod_and_drains(
    overlay: str,
) -> None:
    resources = render(overlay)
    budgets = of_kind(resources, "PodDisruptionBudget")
    for deployment in of_kind(resources, "Deployment"):
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        replicas = deployment["spec"]["replicas"]
        spec = budget["spec"]
        allowed_down = (
            replicas - spec["minAvailable"] if "minAvailable" in spec else spec["maxUnavailable"]
        )
        assert isinstance(allowed_down, int), spec  # a percentage would need its own arithmetic
        assert allowed_down >= 1, "a budget that allows no disruption blocks node drains forever"
        if replicas >= 2:
            assert allowed_down <= replicas - 1, "a drain may take every replica at once"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webapp_rolls_without_losing_capacity(overlay: str) -> None:
    deployment = find(render(overlay), "Deployment", "webapp")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_postgres_overlay_runs_several_users_replicas_rolling() -> None:
    resources = render("postgres")
    deployment = find(resources, "Deployment", "users")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    (url,) = [e for e in container(resources, "users")["env"] if e["name"] == "USERS_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "users-database", "key": "url"}


def test_sqlite_overlay_runs_one_users_replica_recreated_on_a_volume() -> None:
    resources = render("sqlite")
    deployment = find(resources, "Deployment", "users")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    url = environment("sqlite", container(resources, "users"))["USERS_DATABASE_URL"]
    assert url.startswith("sqlite:////"), "sqlite:/// then an absolute path"
    database = PurePosixPath(url.removeprefix("sqlite:///"))
    mounts = {m["mountPath"]: m["name"] for m in container(resources, "users")["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    claim = volumes[mounts[str(database.parent)]]["persistentVolumeClaim"]["claimName"]
    assert find(resources, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == [
        "ReadWriteOnce"
    ]


def test_postgres_runs_the_official_image_with_its_state_on_volumes() -> None:
    statefulset = find(render("postgres"), "StatefulSet", "postgres")
    (spec,) = pod_spec(statefulset)["containers"]
    assert re.fullmatch(r"postgres:\d+", spec["image"]), spec["image"]
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    empty_dirs = {v["name"] for v in pod_spec(statefulset)["volumes"] if "emptyDir" in v}
    pgdata = PurePosixPath(next(e["value"] for e in spec["env"] if e["name"] == "PGDATA"))
    data_mount = next(PurePosixPath(m) for m, name in mounts.items() if name in claims)
    # Below the mount point, not on it: initdb wants an empty directory it owns (no lost+found).
    assert data_mount in pgdata.parents
    assert mounts["/var/run/postgresql"] in empty_dirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webapp_reaches_users_through_the_headless_service(overlay: str) -> None:
    resources = render(overlay)
    target = environment(overlay, container(resources, "webapp"))["WEBAPP_USERS_TARGET"]
    match = re.fullmatch(r"dns:///([a-z0-9-]+)(\.[a-z0-9.-]+)?:(\d+)", target)
    assert match, f"{target}: the dns resolver, so round_robin sees every pod"
    name, domain, port = match.groups()
    assert domain is None or domain.startswith(f".{NAMESPACE}.svc"), domain
    service = find(resources, "Service", name)
    assert service["spec"]["clusterIP"] == "None"
    assert not service["spec"].get("publishNotReadyAddresses", False)
    users = find(resources, "Deployment", "users")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(users))
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    # The API port; the other is the kubelet's plaintext health-only port.
    (users_port,) = [p for p in container(resources, "users")["ports"] if p["name"] == "grpc"]
    assert service_port["targetPort"] in (users_port["name"], users_port["containerPort"])
