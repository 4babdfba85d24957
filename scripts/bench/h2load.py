"""Unary gRPC load with h2load: one prebuilt length-prefixed request, sent over and over.

h2load (nghttp2, C) costs far less CPU per call than any Python client. It does not read gRPC
trailers, so a call counts as OK only if its reply carried exactly the expected message: every
DATA byte received must add up to `done` replies of the known size (an error reply has none).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import Message

from scripts.bench.procs import pinned
from scripts.bench.results import Load, percentiles_ms

GRPC_HEADERS = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
CONNECTIONS = 4


def frame(message: Message) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    body = message.SerializeToString()
    return b"\0" + len(body).to_bytes(4, "big") + body


def unary(
    url: str,
    request: Message,
    *,
    reply_size: int,
    concurrency: int,
    seconds: float,
    cores: str | None,
    workdir: Path,
    headers: Sequence[str] = (),
) -> Load:
    """Drives `url` for `seconds` with `concurrency` calls in flight over 4 connections;
    `headers` ("name: value") go on every call."""
    body, log = workdir / "h2load-body", workdir / "h2load-latencies.tsv"
    body.write_bytes(frame(request))
    log.unlink(missing_ok=True)  # h2load appends
    command = [
        "h2load", f"-D{seconds:g}", f"-c{CONNECTIONS}", f"-m{max(1, concurrency // CONNECTIONS)}",
        "-t1", f"-d{body}", *GRPC_HEADERS, *(f"-H{h}" for h in headers), f"--log-file={log}", url,
    ]  # fmt: skip
    out = subprocess.run(
        pinned(command, cores), capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    # With -D, h2load counts only the timed phase (not connecting): the rate is per -D second.
    return _parse(out, log, reply_size + 5, timed_seconds=seconds)


def _parse(out: str, log: Path, frame_size: int, timed_seconds: float | None = None) -> Load:
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    requests = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    data = re.search(r"\((\d+)\) data", out)
    if not (finished and requests and data):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    # h2load's `done` = succeeded + failed, and failed already holds errored, timed-out and
    # non-2xx requests: count each failed call once.
    done, succeeded = (int(n) for n in requests.groups()[:2])
    seconds = timed_seconds or float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    well_formed = int(data[1]) // frame_size
    errors = (done - succeeded) + max(0, succeeded - well_formed)
    latencies = [int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines()]
    p50, p99 = percentiles_ms(latencies)
    return Load(calls=done - errors, seconds=seconds, errors=errors, p50_ms=p50, p99_ms=p99)


def stream(
    url: str, request: Message, *, messages: int, total_bytes: int, seconds: float,
    cores: str | None, workdir: Path,
) -> Load:  # fmt: skip
    """One server-streaming call; OK only if exactly `total_bytes` of messages arrived."""
    body = workdir / "h2load-body"
    body.write_bytes(frame(request))
    command = ["h2load", "-n1", "-c1", "-m1", f"-d{body}", *GRPC_HEADERS, url]
    out = subprocess.run(
        pinned(command, cores), capture_output=True, text=True, check=True, timeout=seconds
    ).stdout
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    data = re.search(r"\((\d+)\) data", out)
    if not (finished and data):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    elapsed = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    if int(data[1]) != total_bytes:
        return Load(calls=0, seconds=elapsed, errors=1)
    return Load(calls=messages, seconds=elapsed, errors=0, p50_ms=elapsed * 1000)
