"""The GitHub Actions workflow runs what the README promises, where the users are.

`make test` (.ci/run) on x86-64 and arm64 Linux runners, with uv's downloads and the images'
layers cached; a macOS job with lint and the tests that need no Docker; current action versions.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# The oldest major version of each action the workflow may use (their current majors, late 2026).
CURRENT = {
    "actions/checkout": 6,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "actions/upload-artifact": 6,
    "docker/setup-buildx-action": 3,
    "crazy-max/ghaction-github-runtime": 3,
}

Job = dict[str, Any]


@functools.cache
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def jobs() -> dict[str, Job]:
    return dict(workflow()["jobs"])


def runs(job: Job) -> str:
    """Every `run:` of the job, one after the other."""
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def uses(job: Job) -> list[str]:
    return [str(step["uses"]) for step in job["steps"] if "uses" in step]


def runners(job: Job) -> list[str]:
    runs_on = job["runs-on"]
    if "matrix" in str(runs_on):
        return list(job["strategy"]["matrix"]["runner"])
    return [runs_on]


def make_test_job() -> Job:
    (job,) = [j for j in jobs().values() if ".ci/run" in runs(j) or "make test" in runs(j)]
    return job


def test_make_test_runs_on_x86_64_and_arm64_linux() -> None:
    job = make_test_job()
    assert set(runners(job)) == {"ubuntu-24.04", "ubuntu-24.04-arm"}
    assert job["strategy"]["fail-fast"] is False  # one CPU's failure does not hide the other's
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_uv_downloads_are_cached_per_cpu_and_lock() -> None:
    for job in jobs().values():
        (cache,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
        assert "uv" in cache["with"]["path"]
        key = cache["with"]["key"]
        assert "runner.arch" in key
        assert "hashFiles('uv.lock')" in key


def test_image_layers_are_cached_and_the_tests_build_on_them() -> None:
    job = make_test_job()
    steps = job["steps"]
    names = uses(job)
    assert any(u.startswith("docker/setup-buildx-action@") for u in names)
    build = next(i for i, s in enumerate(steps) if "--cache-from" in str(s.get("run", "")))
    script = steps[build]["run"]
    assert "type=gha" in script
    assert "--cache-to" in script
    assert "runner.arch" in script  # arm64 layers never serve x86-64 builds
    tests = next(i for i, s in enumerate(steps) if ".ci/run" in str(s.get("run", "")))
    assert build < tests


def test_macos_runs_lint_and_the_tests_without_docker() -> None:
    (job,) = [j for j in jobs().values() if all(r.startswith("macos") for r in runners(j))]
    script = runs(job)
    assert "make lint" in script
    assert re.search(r'-m "not docker and not browser"', script)
    for suite in ("libs/plumbing/tests", "services/users/tests", "tests/deploy", "tests/scripts"):
        assert suite in script
    assert ".ci/run" not in script  # no Docker on macOS runners


@pytest.mark.parametrize("job_name", sorted(workflow()["jobs"]))
def test_actions_are_pinned_to_current_major_versions(job_name: str) -> None:
    for action in uses(jobs()[job_name]):
        name, _, version = action.partition("@")
        assert name in CURRENT, f"{action}: add it to CURRENT with its current major"
        assert re.fullmatch(r"v\d+", version), f"{action}: pin a major version tag"
        assert int(version[1:]) >= CURRENT[name], f"{action}: v{CURRENT[name]} is current"


def test_every_job_has_a_timeout_and_the_token_reads_only() -> None:
    assert workflow()["permissions"] == {"contents": "read"}
    for job in jobs().values():
        assert 0 < job["timeout-minutes"] <= 90
