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
_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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
    return parse(out, log.read_text(), reply_size + 5, timed_seconds=seconds)


def parse(out: str, log: str, frame_size: int, timed_seconds: float | None = None) -> Load:
    """h2load's output and --log-file (a line per request: start, status, microseconds): the
    calls that carried exactly one reply of `frame_size` bytes, the others as errors, and the
    p50 and p99 of every request's time."""
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
    latencies = [int(line.split("\t")[2]) / 1000 for line in log.splitlines()]
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
    return parse_stream(out, messages, total_bytes)


def parse_stream(out: str, messages: int, total_bytes: int) -> Load:
    """One stream's h2load output: OK if exactly `total_bytes` arrived; its latency is the time
    to the first byte (the first message: the whole stream's time is what the rate says)."""
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    data = re.search(r"\((\d+)\) data", out)
    first = re.search(r"time to 1st byte:\s+([\d.]+)(us|ms|s)\s", out)
    if not (finished and data and first):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    elapsed = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    if int(data[1]) != total_bytes:
        return Load(calls=0, seconds=elapsed, errors=1)
    first_ms = round(float(first[1]) * _MS[first[2]], 3)
    return Load(calls=messages, seconds=elapsed, errors=0, p50_ms=first_ms, p99_ms=first_ms)
