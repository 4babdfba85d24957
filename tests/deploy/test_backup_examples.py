"""deploy/examples/backup/<overlay>: each overlay plus a backup CronJob that fits it.

Rendered by the real kustomize and validated against the API schemas; the CronJob runs the image
and reads the database its overlay's service uses, mounts what it names, keeps Pod Security
"restricted", and (postgres) the NetworkPolicies let it reach the database and nothing else.
"""

from __future__ import annotations

import functools
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    NAME_LABEL,
    OVERLAYS,
    Resource,
    container,
    environment,
    find,
    generated_secrets,
    kubectl,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    selects,
)
from tests.deploy.netpol import Pod, allowed
from tests.deploy.test_render import validate

EXAMPLES = DEPLOY / "examples" / "backup"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@functools.cache
def example(overlay: str) -> tuple[Resource, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(EXAMPLES / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def cronjob(overlay: str) -> Resource:
    (job,) = of_kind(example(overlay), "CronJob")
    return job


def job_pod(overlay: str) -> dict[str, Any]:
    return dict(cronjob(overlay)["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def job_container(overlay: str) -> dict[str, Any]:
    (spec,) = job_pod(overlay)["containers"]
    return dict(spec)


def mounts(pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in spec["volumeMounts"]}


def key(resource: Resource) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_example_is_its_overlay_plus_a_valid_backup_cronjob(overlay: str) -> None:
    resources = example(overlay)
    added = {key(r) for r in resources} - {key(r) for r in render(overlay)}
    assert {kind for kind, _ in added} <= {"CronJob", "PersistentVolumeClaim", "NetworkPolicy"}
    for resource in render(overlay):  # the overlay itself is unchanged
        assert find(resources, resource["kind"], resource["metadata"]["name"]) == resource
    for resource in resources:
        if key(resource) in added:
            validate(resource)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backup_cronjob_runs_one_at_a_time_and_restricted(overlay: str) -> None:
    job, pod, spec = cronjob(overlay), job_pod(overlay), job_container(overlay)
    assert len(job["spec"]["schedule"].split()) == 5
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {k: spec["securityContext"][k] for k in RESTRICTED} == RESTRICTED
    assert "limits" in spec["resources"]
    # The copies go to a claim of their own, which the example declares.
    backups = mounts(pod, spec)["/backups"]["persistentVolumeClaim"]["claimName"]
    find(example(overlay), "PersistentVolumeClaim", backups)


def test_sqlite_backup_copies_the_database_the_service_uses_beside_it() -> None:
    resources = example("sqlite")
    users = find(resources, "Deployment", "users")
    service = container(resources, "users")
    pod, spec = job_pod("sqlite"), job_container("sqlite")

    assert spec["image"] == service["image"]
    database_url = environment("sqlite", service)["USERS_DATABASE_URL"]
    database = database_url.removeprefix("sqlite:///")
    assert spec["command"][:3] == ["users-backup", "copy", database]
    assert spec["command"][3] == "/backups"
    # The same claim as the service, mounted where the service's URL expects the file.
    service_mounts = mounts(pod_spec(users), service)
    data_dir = database.rsplit("/", 1)[0]
    assert mounts(pod, spec)[data_dir] == service_mounts[data_dir]
    assert pod["securityContext"]["runAsUser"] == pod_spec(users)["securityContext"]["runAsUser"]
    # ReadWriteOnce: the job is scheduled on the users pod's node.
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"], pod_labels(users))


def test_postgres_backup_dumps_the_services_database_with_the_overlays_postgres() -> None:
    resources = example("postgres")
    statefulset = find(resources, "StatefulSet", "postgres")
    (server,) = pod_spec(statefulset)["containers"]
    pod, spec = job_pod("postgres"), job_container("postgres")

    assert spec["image"] == server["image"]  # pg_dump of the server's own version
    assert "pg_dump --format=custom" in spec["command"][-1]
    assert "pg_restore --list" in spec["command"][-1]  # a dump that does not read back fails
    url = urlsplit(environment("postgres", spec)["DATABASE_URL"])
    service_url = urlsplit(
        environment("postgres", container(resources, "users"))["USERS_DATABASE_URL"]
    )
    assert url == service_url  # the service's own role: no superuser password in the job
    options = parse_qs(url.query)
    assert options["sslmode"] == ["verify-full"]
    ca_dir, _, ca_file = options["sslrootcert"][0].rpartition("/")
    secret = mounts(pod, spec)[ca_dir]["secret"]
    assert secret["secretName"] == "postgres-tls"
    assert secret["items"] == [{"key": "ca.crt", "path": ca_file}]  # the CA, not the key
    assert {s["metadata"]["name"] for s in generated_secrets("postgres")} >= {"users-database"}


def test_postgres_backup_pods_reach_the_database_and_nothing_else() -> None:
    resources = example("postgres")
    policies = of_kind(resources, "NetworkPolicy")
    labels = cronjob("postgres")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    backup = Pod("backup", "userstack", labels, {}, ())
    postgres = Pod("postgres", "userstack", {NAME_LABEL: "postgres"}, {}, (("TCP", 5432),))
    users = Pod("users", "userstack", {NAME_LABEL: "users"}, {}, (("TCP", 50051),))
    stranger = Pod("stranger", "userstack", {NAME_LABEL: "stranger"}, {}, ())

    assert allowed(policies, backup, postgres, ("TCP", 5432))
    assert not allowed(policies, backup, users, ("TCP", 50051))
    assert not allowed(policies, stranger, postgres, ("TCP", 5432))
    assert not allowed(policies, backup, postgres, ("TCP", 5433))
