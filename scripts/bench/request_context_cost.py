"""`python -m scripts.bench.request_context_cost`: what the webapp's middleware costs per request.

Prints, in CPU time (best of 25 runs), the Host check, taking the caller's credentials (an
`Authorization` header, a session cookie, none), and the whole RequestContextMiddleware around an
app that answers at once, for an anonymous, a bearer and a cookie request. With `--baseline
PATH` (another revision's middleware.py, e.g. `git show main:services/webapp/src/webapp/
middleware.py > /tmp/old.py`) it runs that one interleaved and prints the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import time
import timeit
from typing import Any

from webapp import session
from webapp.hosts import HostCheck
from webapp.middleware import RequestContextMiddleware

TOKEN = b"x" * 300  # about a JWT's length
HEADERS: dict[str, list[tuple[bytes, bytes]]] = {
    "anonymous": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
    "bearer": [(b"host", b"127.0.0.1:8000"), (b"authorization", b"Bearer " + TOKEN)],
    "cookie": [(b"host", b"127.0.0.1:8000"), (b"cookie", b"csrftoken=a.b; session=" + TOKEN)],
}
CALLS, RUNS = 20_000, 25


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _per_request(middleware: Any, headers: list[tuple[bytes, bytes]]) -> float:
    """µs of CPU per request through `middleware`, one run."""
    scope = {"type": "http", "method": "GET", "path": "/api/v1/users/1", "headers": headers}

    async def receive() -> dict[str, str]:
        return {"type": "http.request"}

    async def send(_message: Any) -> None:
        pass

    started = time.thread_time()
    for _ in range(CALLS):
        await middleware(scope, receive, send)
    return (time.thread_time() - started) / CALLS * 1e6


def _components() -> None:
    check = HostCheck(["localhost", "127.0.0.1", "[::1]"])
    header, cookie = HEADERS["bearer"][1][1], HEADERS["cookie"][1][1]
    for name, call in [
        ("host check", lambda: check.allows(b"127.0.0.1:8000")),
        ("bearer header", lambda: session.authorization(header, None, "GET", "/", False)),
        ("session cookie", lambda: session.authorization(None, cookie, "GET", "/", False)),
        ("anonymous", lambda: session.authorization(None, None, "GET", "/", False)),
    ]:
        best = min(timeit.Timer(call, timer=time.thread_time).repeat(RUNS, 50_000)) / 50_000
        print(f"{name:16s} {best * 1e9:7.0f} ns")


async def _middleware(baseline: str | None) -> None:
    old: Any = None
    if baseline:
        spec = importlib.util.spec_from_file_location("baseline_middleware", baseline)
        if spec is None or spec.loader is None:
            raise SystemExit(f"{baseline}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        old = module.RequestContextMiddleware(_app)
    new = RequestContextMiddleware(_app)
    for name, headers in HEADERS.items():
        ours, theirs = [], []
        for _ in range(RUNS):
            ours.append(await _per_request(new, headers))
            if old is not None:
                theirs.append(await _per_request(old, headers))
        line = f"middleware {name:9s} {min(ours):6.2f} µs"
        if theirs:
            line += f"   baseline {min(theirs):6.2f} µs   added {min(ours) - min(theirs):+.2f} µs"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="another revision's webapp/middleware.py")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the access lines
    _components()
    asyncio.run(_middleware(args.baseline))


if __name__ == "__main__":
    main()
