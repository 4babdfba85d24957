"""A million users in SQLite: one client loops the worst cheap requests while another's GetUser
is still served: no request holds the event loop for long (docs/limits.md, the event loop)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys

import pytest
from testkit.starvation import get_user_times

from .conftest import MILLION as USERS
from .conftest import ServerProcess

pytestmark = pytest.mark.slow

# "Not starved", not the issue's 50 ms: that p99 is `make bench`'s starvation row, measured with
# the server on a core of its own (docs/limits.md, the figures). This test runs beside whatever
# else loads the machine, the server unpinned; it fails when a request holds the loop for
# long: before the prefix scans moved off the loop each held it ~220 ms, and 1,000 GetUsers
# beside them did not finish in 300 s.
P99_CEILING_MS = 250
SECONDS = 5.0


async def test_get_user_stays_fast_while_another_client_loops_the_worst_cheap_requests(
    million_users: ServerProcess, admin_token: str
) -> None:
    proc = million_users
    quiet, _ = await get_user_times(proc.target, USERS, 1.0, admin_token)
    command = [sys.executable, "-m", "testkit.starvation", "hammer", proc.target, admin_token]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as hammer:  # noqa: ASYNC220
        try:
            assert hammer.stdout is not None
            assert await asyncio.to_thread(hammer.stdout.readline) == "hammering\n"
            await asyncio.sleep(1)  # the loops under way
            loaded, failed = await get_user_times(proc.target, USERS, SECONDS, admin_token)
            assert hammer.poll() is None, "the hammering client stopped: one of its calls failed"
        finally:
            hammer.kill()
    cuts = statistics.quantiles(loaded, n=100, method="inclusive")
    alone = statistics.quantiles(quiet, n=100, method="inclusive")
    print(
        f"GetUser p50/p99 alone {alone[49]:.1f}/{alone[98]:.1f} ms; beside the worst cheap"
        f" requests {cuts[49]:.1f}/{cuts[98]:.1f} ms (max {max(loaded):.1f}, {len(loaded)} calls)"
    )
    assert failed == 0
    assert cuts[98] < P99_CEILING_MS
