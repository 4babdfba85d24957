"""Each overlay renders with kustomize and validates against current Kubernetes schemas, offline.

kubernetes-validate bundles the API's JSON schemas per Kubernetes version; "strict" ones also
refuse fields the API does not have, so a misspelt probe or a misplaced key fails here instead
of being dropped by a lenient apply.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from webapp.config import MIN_SECRET_KEY_LENGTH

from tests.deploy.manifests import (
    NAMESPACE,
    OVERLAYS,
    Resource,
    find,
    generated_secrets,
    kubectl,
    render,
    secret_refs,
    secrets_script,
)

KUBERNETES_VERSION = "1.37"


def validate(resource: Resource) -> None:
    """Fails the test with the path and message of the first schema violation."""
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path)
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        pytest.fail(f"{name} at {where}: {error.message}", pytrace=False)


def test_a_machine_without_kubectl_fails_and_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A failure, not a skip: a skipped render would let every check here go unseen.
    real_get_path = sysconfig.get_path
    monkeypatch.setattr(
        sysconfig,
        "get_path",
        lambda name, *a: str(tmp_path) if name == "scripts" else real_get_path(name, *a),
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        kubectl()
    assert outcome.type is pytest.fail.Exception
    assert "kubectl not found" in str(outcome.value)
    assert "make dev" in str(outcome.value)


def test_the_schemas_of_that_kubernetes_version_are_bundled() -> None:
    # kubernetes-validate falls back to the newest bundled version older than the one asked
    # for: asking for one it lacks would quietly check against an older API.
    bundled = kubernetes_validate.utils.all_versions()
    assert any(v.startswith(f"{KUBERNETES_VERSION}.") for v in bundled), bundled[-3:]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    resources = render(overlay)
    assert len(resources) > 10
    for resource in resources:
        validate(resource)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_restricted_namespace(overlay: str) -> None:
    resources = render(overlay)
    namespace = find(resources, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == NAMESPACE, resource["metadata"]
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "userstack"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_script_makes_every_secret_the_pods_read(overlay: str) -> None:
    secrets = list(generated_secrets(overlay))
    for secret in secrets:
        validate(secret)
        assert secret["metadata"]["namespace"] == NAMESPACE
    refs = secret_refs(render(overlay))
    made = {
        (name, "*" if (name, "*") in refs else key)
        for s in secrets
        for key in s["stringData"]
        if (name := s["metadata"]["name"])
    }
    assert made == refs
    webapp_key = next(s for s in secrets if s["metadata"]["name"] == "webapp")
    assert len(webapp_key["stringData"]["secret-key"]) >= MIN_SECRET_KEY_LENGTH


def test_secrets_script_draws_fresh_values_each_run() -> None:
    first, second = secrets_script("postgres"), secrets_script("postgres")
    # All but the first admin's username ("admin"), which is no secret.
    values = [v for s in first for k, v in s["stringData"].items() if k != "username"]
    assert not set(values) & {v for s in second for v in s["stringData"].values()}


def test_database_url_carries_the_password_postgres_is_given() -> None:
    resources = render("postgres")
    secrets = {s["metadata"]["name"]: s["stringData"] for s in generated_secrets("postgres")}
    url = urlsplit(secrets["users-database"]["url"])
    assert url.scheme == "postgresql"
    # The service's own role (POSTGRES_APP_*), not the superuser (POSTGRES_USER).
    assert url.password == secrets["postgres"]["app-password"]
    assert url.password != secrets["postgres"]["password"]
    (container,) = find(resources, "StatefulSet", "postgres")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert url.username == env["POSTGRES_APP_USER"] != env["POSTGRES_USER"]
    app_password = next(e for e in container["env"] if e["name"] == "POSTGRES_APP_PASSWORD")
    assert app_password["valueFrom"]["secretKeyRef"] == {"name": "postgres", "key": "app-password"}
    assert url.path == f"/{env['POSTGRES_DB']}"
    service = find(resources, "Service", url.hostname or "")
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
