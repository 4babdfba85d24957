"""The scripts `make up` and `make test` run use only what macOS ships, as macOS ships it.

Statically: no GNU-only command or flag, and no bash newer than macOS's 3.2, in the shell the
Makefile and scripts run. Dynamically: testkit.macos_path's PATH, which the integration test
tests/integration/test_macos_path.py runs `make up` with, refuses what a Mac would.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from testkit.macos_path import VIOLATION_EXIT, macos_path, violations

ROOT = Path(__file__).resolve().parents[2]
SHELL_FILES = sorted(
    [
        *ROOT.glob("scripts/*.sh"),
        ROOT / "protos" / "compile.sh",
        ROOT / "Makefile",
        ROOT / ".ci" / "run",
    ]
)
# Command-line shapes a Mac lacks: GNU coreutils alone, or GNU-only flags of tools it has.
GNU_ONLY = {
    r"(^|[\s;(|&`])timeout\s": "timeout (python3 scripts/bounded.py SECONDS ...)",
    r"\b(sha256sum|sha1sum|md5sum)\b": "sha256sum (python3 hashlib)",
    r"\bnproc\b": "nproc",
    r"\bstat\s+-c\b": "stat -c",
    r"\bdate\s+(-d|--date)\b": "date -d",
    r"\bsed\s+(-r|-i\s)": "sed -r / bare sed -i",
    r"\bxargs\s+-r\b": "xargs -r",
    r"\b(head|tail)\s+-n\s*-\d": "head -n -N",
    r"\bgrep\s+-\w*P": "grep -P",
    r"\breadlink\s+-f\b": "readlink -f (macOS before 12.3)",
}
# bash 4+ (macOS's /bin/bash is 3.2).
BASH_4 = {
    r"\b(mapfile|readarray)\b": "mapfile",
    r"\bdeclare\s+-A\b": "associative arrays",
    r"\$\{\w+(,,|\^\^)\}": "case conversion",
    r"&>>|\|&": "&>> and |&",
}


def code_lines(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    return [(n, line) for n, line in enumerate(lines, 1) if not line.lstrip().startswith("#")]


@pytest.mark.parametrize("path", SHELL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_host_shell_uses_nothing_macos_lacks(path: Path) -> None:
    found = [
        f"{path.name}:{n}: {what}: {line.strip()}"
        for n, line in code_lines(path)
        for pattern, what in {**GNU_ONLY, **BASH_4}.items()
        if re.search(pattern, line)
    ]
    assert found == []


def test_the_static_check_sees_what_the_old_scripts_used(tmp_path: Path) -> None:
    old = tmp_path / "old.sh"  # lines build-inputs.sh and wheelhouse.sh had before
    old.write_text(
        '|| timeout 120 docker pull --quiet "$official"\n'
        "inputs=\"$(cat uv.lock | sha256sum | cut -d' ' -f1)\"\n"
    )
    hits = [p for _, line in code_lines(old) for p in GNU_ONLY if re.search(p, line)]
    assert len(hits) == 2


def run(path: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", "-c", script],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_macos_path_has_no_gnu_timeout_or_sha256sum(tmp_path: Path) -> None:
    path = macos_path(tmp_path / "bin")
    for missing in ("timeout", "sha256sum", "nproc", "apt-get", "debootstrap"):
        assert run(path, f"{missing} --help").returncode == 127, missing
    result = run(path, "printf 'a\\n' | shasum -a 256 | cut -d' ' -f1")
    assert (
        result.stdout.strip() == "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7"
    )


@pytest.mark.parametrize(
    "line",
    [
        "sed -r s/a/b/ /dev/null",
        "stat -c %s /dev/null",
        "head -n -1 /dev/null",
        "grep --quiet a /dev/null",
    ],
)
def test_the_macos_path_refuses_gnu_flags(tmp_path: Path, line: str) -> None:
    path = macos_path(tmp_path / "bin")
    assert run(path, line).returncode == VIOLATION_EXIT
    assert violations(path) == [line.replace("  ", " ")]


def test_the_macos_path_runs_bsd_shaped_lines(tmp_path: Path) -> None:
    path = macos_path(tmp_path / "bin")
    result = run(path, "printf 'x=1\\nx=2\\n' | sed -n 's/^x=//p' | tail -n1")
    assert (result.returncode, result.stdout) == (0, "2\n")
    assert violations(path) == []
