"""ExportUsers streams a million users from a real server process in flat memory, at the pace
of its client."""

from __future__ import annotations

import asyncio

import pytest
from testkit.channels import aio_channel
from testkit.processes import memory_kb, reset_peak_rss
from users.v1 import users_pb2, users_pb2_grpc

from .conftest import MILLION as USERS
from .conftest import ServerProcess

pytestmark = pytest.mark.slow


# A million users as Python objects (rows, messages) would take well over 1 GB, and as the bytes
# of a stream ~50 MB; one keyset page at a time (about 50 KB) must stay far below either.
MAX_GROWTH_MB = 30
# Long enough for a server that did not wait for its client to read ahead by more than the bound.
PAUSE_SECONDS = 2.0


async def test_export_users_streams_a_million_users_in_flat_memory(
    million_users: ServerProcess, admin_token: str
) -> None:
    proc = million_users
    pid = proc.process.pid
    async with aio_channel(proc.target, token=admin_token) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        warm = [b async for b in stub.ExportUsers(users_pb2.ExportUsersRequest(after_id=USERS - 2))]
        assert [user.id for batch in warm for user in batch.users] == [USERS - 1, USERS]
        baseline_kb = memory_kb(pid, "VmRSS")
        reset_peak_rss(pid)
        call = stub.ExportUsers(users_pb2.ExportUsersRequest())
        count, last_id = 0, 0
        async for batch in call:
            if count == 0:
                await asyncio.sleep(PAUSE_SECONDS)  # the client stops reading for a while
            assert batch.users[0].id > last_id
            count, last_id = count + len(batch.users), batch.users[-1].id
        peak_kb = memory_kb(pid, "VmHWM")
    assert (count, last_id) == (USERS, USERS)
    growth_mb = (peak_kb - baseline_kb) / 1024
    print(f"peak RSS +{growth_mb:.1f} MiB while exporting {count:,} users")
    assert growth_mb < MAX_GROWTH_MB, f"peak RSS grew {growth_mb:.1f} MB while exporting"
