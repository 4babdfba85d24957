"""Runs a command for at most N seconds: `python3 scripts/bounded.py 120 docker pull IMAGE`.

GNU coreutils' `timeout`, which macOS does not ship. Exits with the command's status, or 124 (as
`timeout` does) when the time ran out and the command was killed.
"""

from __future__ import annotations

import subprocess
import sys

TIMED_OUT = 124


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: bounded.py SECONDS COMMAND [ARG...]", file=sys.stderr)
        return 2
    seconds, command = float(argv[0]), argv[1:]
    try:
        return subprocess.run(command, timeout=seconds, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"bounded.py: {command[0]} ran out of its {seconds:g} s", file=sys.stderr)
        return TIMED_OUT
    except FileNotFoundError:
        print(f"bounded.py: {command[0]}: command not found", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
