"""HTTP load with wrk (C, one thread): GETs over keep-alive connections."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from scripts.bench.procs import pinned
from scripts.bench.results import Load

_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_RANDOM_USER = Path(__file__).with_name("random_user.lua")


def get_users(
    prefix: str, users: int, concurrency: int, seconds: float, cores: str | None,
    *, token: str | None = None,
) -> Load:  # fmt: skip
    """GET `prefix`<id> for ids drawn at random from 1..`users`: `concurrency` connections, each
    with one request in flight, for `seconds`; `token` on every request when given."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout=10s", "--latency"]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    command += ["-s", str(_RANDOM_USER), prefix, "--", str(users)]
    out = subprocess.run(
        pinned(command, cores), capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    return parse(out)


def parse(out: str) -> Load:
    """What wrk's output (with --latency) says: requests, errors, p50 and p99."""
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not done:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    seconds_taken = float(done[2]) / (1000 if done[3] == "ms" else 1)
    return Load(
        calls=int(done[1]) - errors,
        seconds=seconds_taken,
        errors=errors,
        p50_ms=_ms(out, 50),
        p99_ms=_ms(out, 99),
    )


def _ms(out: str, quantile: int) -> float | None:
    match = re.search(rf"\s{quantile}%\s+([\d.]+)(us|ms|s)\b", out)
    return round(float(match[1]) * _SCALE[match[2]], 3) if match else None
