"""Downloads, on the host, every wheel the image builds need into wheelhouse/, for the engine's CPU.

For engines that reach no package index from inside a build (our CI machines: HTTPS fails there):
the Dockerfile installs from wheelhouse/ with --no-index when it holds wheels. The wheels are those
of the runtime dependencies of both services, the protos group and wheelhouse/build-tools.txt,
pinned by uv.lock, for Linux / CPython 3.11 on the architecture of the engine that builds (asked
of the engine, not the host: Docker Desktop's engine is a Linux VM; PLATFORM=linux/arm64 asks for
another, emulated). Several architectures live side by side (pip picks by tag); a change of
uv.lock or build-tools.txt empties the directory first. `--clear` empties it (builds then use the
index). Stdlib only, no GNU tools: it runs on macOS's own python3 as on Linux.

    python3 scripts/wheelhouse.py                     # the engine's architecture
    PLATFORM=linux/arm64 python3 scripts/wheelhouse.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / "wheelhouse"
TOOLS = ROOT / ".tools" / "bin"
# Docker's names for the CPUs (`docker version`, --platform) and the wheels' names for them.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36: both base images are bookworm


def engine_arch() -> str:
    """The Docker Engine's CPU architecture as Docker names it (amd64, arm64)."""
    result = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Arch}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"error: no Docker Engine answers: {result.stderr.strip()}")
    return result.stdout.strip()


def target_arch(platform: str | None) -> str:
    """The Docker architecture of PLATFORM (linux/amd64, linux/arm64) or else of the engine."""
    arch = platform.removeprefix("linux/") if platform else engine_arch()
    if arch not in WHEEL_ARCH:
        raise SystemExit(f"error: platform {platform or arch}: linux/amd64 or linux/arm64")
    return arch


def platform_tags(wheel_arch: str) -> list[str]:
    """pip's --platform values: every manylinux a bookworm glibc runs (pip 23 does not widen)."""
    legacy = [f"manylinux{name}_{wheel_arch}" for name in ("2014", "2010", "1")]
    return legacy + [f"manylinux_2_{minor}_{wheel_arch}" for minor in range(5, GLIBC_MINOR + 1)]


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in ("uv.lock", "wheelhouse/build-tools.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def clear() -> None:
    for path in [*DIR.glob("*.whl"), *DIR.glob(".inputs*.sha256")]:
        path.unlink()


def download(wheel_arch: str, requirements: Path, *args: str) -> None:
    platforms = [arg for tag in platform_tags(wheel_arch) for arg in ("--platform", tag)]
    command = [str(TOOLS / "pip"), "download", "--isolated", "--quiet"]
    command += ["--disable-pip-version-check", "--only-binary=:all:", *platforms]
    command += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    command += ["--dest", str(DIR), *args, "-r", str(requirements)]
    subprocess.run(command, check=True, timeout=1800)


def fill(arch: str) -> None:
    """The wheels for `arch`, unless its stamp says they are there for the current inputs."""
    wheel_arch = WHEEL_ARCH[arch]
    stamp = DIR / f".inputs-{wheel_arch}.sha256"
    digest = inputs_digest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    if any(p.read_text().strip() != digest for p in DIR.glob(".inputs*.sha256")):
        clear()  # wheels of another lock: pinned versions make them dead weight
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        requirements = Path(work) / "requirements.txt"
        export = [str(TOOLS / "uv"), "export", "--quiet", "--locked", "--all-packages"]
        export += ["--no-dev", "--group", "protos", "--no-emit-workspace", "-o", str(requirements)]
        subprocess.run(export, cwd=ROOT, check=True, timeout=300)
        download(wheel_arch, requirements, "--require-hashes")
    download(wheel_arch, DIR / "build-tools.txt")
    stamp.write_text(digest + "\n")
    wheels = list(DIR.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) >> 20
    took = time.monotonic() - start
    print(
        f"wheelhouse: {len(wheels)} wheels, {size} MiB, {wheel_arch} in {took:.0f} s",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clear", action="store_true", help="remove every wheel (use the index)")
    args = parser.parse_args(argv)
    if args.clear:
        clear()
        return 0
    fill(target_arch(os.environ.get("PLATFORM") or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
