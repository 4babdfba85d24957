"""How the images are built: one Dockerfile, a stage per service, and compose naming them alike.

The Dockerfile's builder takes SERVICE (whose venv to build) and compose picks the runtime stage
with `target`: the two must name the same service, or an image runs one service's command over the
other's venv. The tests that run the images (user, no build tools, health) are in tests/integration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("users", "webapp")
# The uid the images run as (tests/deploy/test_policies.py pins the manifests to it).
APP_USER = "10001:10001"


def stages() -> dict[str, list[str]]:
    """The Dockerfile's named stages: name -> instructions (continuations joined, no comments)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        named = re.fullmatch(r"FROM \S+ AS (\S+)", line)
        if named:
            current = found.setdefault(named.group(1), [])
        elif line.startswith("FROM "):
            current = []
        current.append(line)
    return found


def build_of(service: str) -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    build: dict[str, Any] = compose["services"][service]["build"]
    return build


@pytest.mark.parametrize("service", SERVICES)
def test_compose_builds_each_image_from_the_stage_and_venv_of_one_service(service: str) -> None:
    build = build_of(service)
    assert build["context"] == "."
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert build["args"]["SERVICE"] == service
    assert build["target"] == service
    assert service in stages()
    assert (ROOT / "services" / service / "pyproject.toml").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_each_runtime_stage_runs_as_the_app_user_with_a_healthcheck_and_an_exec_form_cmd(
    service: str,
) -> None:
    instructions = stages()[service]
    assert instructions[0] == f"FROM runtime AS {service}"
    assert f"USER {APP_USER}" in instructions
    assert any(line.startswith("HEALTHCHECK ") and " CMD [" in line for line in instructions)
    assert any(re.fullmatch(r"CMD \[.+\]", line) for line in instructions)
    # The venv last: the only step that differs per SERVICE, so the steps before it stay cached
    # (and a webapp build passing through the users stage re-runs only this COPY).
    assert instructions[-1] == "COPY --from=builder /opt/venv /opt/venv"


def test_the_runtime_stage_takes_nothing_from_the_builder_but_the_venv() -> None:
    runtime = [line for name in ("runtime", *SERVICES) for line in stages()[name]]
    copies = [line for line in runtime if line.startswith(("COPY", "ADD"))]
    assert copies == ["COPY --from=builder /opt/venv /opt/venv"] * len(SERVICES)


def test_the_dockerfile_builds_with_the_classic_builder() -> None:
    # No registry and no buildx on our machines: nothing that needs BuildKit.
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    assert not re.search(r"--mount|--secret|--ssh|<<", text)
    # The air-gapped path: every image starts from BASE_IMAGE (a local one where nothing pulls).
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert set(bases) <= {"${BASE_IMAGE}", "runtime", "${SERVICE}"}
    assert "ARG BASE_IMAGE=" in text
