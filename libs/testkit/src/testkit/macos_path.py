"""A PATH shaped like macOS's: only the commands a Mac ships, and BSD-compatible flags.

macOS has no GNU coreutils: no `timeout`, `sha256sum`, `nproc`; its sed, stat, date, xargs, head...
are BSD's, which take no `--long` options and lack some GNU flags (`stat -c`, `date -d`, `sed -r`,
`xargs -r`, `head -n -N`). `macos_path(dir)` fills `dir` with a link to each command a Mac has
(found on this host), wrapping the BSD-shaped ones in a shim that refuses GNU-only usage: it
exits 97 and appends the offending command line to `dir/violations.log`. What a Mac cannot
check here: its bash is 3.2 and its make 3.81 (this host's are newer).

Example:
    >>> path = macos_path(tmp_path / "bin")  # doctest: +SKIP
    >>> subprocess.run(["scripts/build-inputs.sh"], env={**os.environ, "PATH": str(path)})
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

# /bin, /usr/bin and /usr/sbin of a current macOS, as far as our scripts could want them, plus
# what the README asks a Mac user to install: Docker Desktop's docker, Python 3.11 (python3).
_SHIPPED = (
    "bash sh cat cp mv rm mkdir chmod ln ls echo test sed grep awk cut head tail tr wc sort uniq "
    "env dirname basename mktemp tar gzip du id uname date sleep find xargs tee touch seq expr "
    "printf true false which curl make git shasum openssl stat readlink kill ps hostname cmp "
    "diff od pwd perl realpath python3 docker"
)
SHIPPED = tuple(_SHIPPED.split())
# BSD tools: no long options, and these GNU-only flags (checked per command).
BSD = {
    "sed": ("-r", "-i"),  # BSD sed needs -i SUFFIX (or -i ''): GNU's bare -i eats the script
    "grep": ("-P",),
    "stat": ("-c",),
    "date": ("-d",),
    "xargs": ("-r",),
    "du": ("-b",),
    "cut": (),
    "head": (),
    "tail": (),
    "sort": (),
    "tr": (),
    "wc": (),
    "mktemp": (),
    "readlink": (),
    "cp": ("-T", "-t"),
    "mv": ("-T", "-t"),
    "ls": (),
    "touch": (),
    "seq": (),
    "uniq": (),
    "basename": (),
    "dirname": (),
}
VIOLATION_EXIT = 97
SHIM = """#!/bin/sh
# macOS-shaped PATH: {name} as BSD has it (testkit.macos_path).
line="{name} $*"
refuse() {{ echo "$line" >>{log}; echo "macOS's {name} has no GNU $1" >&2; exit {code}; }}
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    --?*{flags}) refuse "$arg" ;;
  esac
done
{extra}exec {real} "$@"
"""
# head/tail -n -N (all but the last N lines) is GNU's alone.
NEGATIVE_COUNT = """prev=
for arg in "$@"; do
  if [ "$prev" = -n ]; then case "$arg" in -*) refuse "-n $arg" ;; esac; fi
  prev="$arg"
done
"""


def macos_path(directory: Path) -> Path:
    """Fills `directory` with the shims and links; returns it (use it as the whole PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "violations.log"
    log.touch()
    for name in SHIPPED:
        real = shutil.which(name)
        if real is None:
            continue
        target = directory / name
        if name not in BSD:
            target.symlink_to(real)
            continue
        fields = {"name": name, "log": shlex.quote(str(log)), "code": VIOLATION_EXIT}
        extra = NEGATIVE_COUNT.format(**fields) if name in ("head", "tail") else ""
        target.write_text(
            SHIM.format(
                **fields,
                flags="".join(f" | {flag}" for flag in BSD[name]),
                extra=extra,
                real=shlex.quote(real),
            )
        )
        target.chmod(0o755)
    return directory


def violations(directory: Path) -> list[str]:
    """The GNU-only command lines the shims in `directory` refused, one per line."""
    return (directory / "violations.log").read_text().splitlines()
