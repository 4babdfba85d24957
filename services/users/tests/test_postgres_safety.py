"""PostgreSQL done safely: server-side timeouts on the service's own connections, CHECK
constraints that mirror the validation rules, and a frozen replica that cannot stall creates."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from testkit.channels import aio_channel
from users.v1 import users_pb2, users_pb2_grpc
from users_service.store.postgres import PostgresUserStore, conninfo
from users_service.store.postgres_sql import CREATE_LOCK

from .conftest import ServerFactory

# A "replica" that takes the create lock as a create does, then is frozen (SIGSTOP) before it
# commits: its transaction sits idle, holding the lock.
FROZEN_CREATE = """
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1])
conn.execute("SELECT pg_advisory_xact_lock(%s)", (int(sys.argv[2]),))
print("locked", flush=True)
time.sleep(3600)
"""


async def test_the_service_connection_has_the_three_timeouts(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo(postgres_url)) as conn:
        values = {}
        for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            cursor = await conn.execute(f"SHOW {name}")
            row = await cursor.fetchone()
            assert row is not None
            values[name] = row[0]
    assert values == {
        "statement_timeout": "10s",
        "lock_timeout": "5s",
        "idle_in_transaction_session_timeout": "2s",
    }


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            "INSERT INTO users (username, create_time, update_time, etag)"
            " VALUES ('Bad Name', now(), now(), 'e')",
            "users_username_format",
        ),
        (
            "INSERT INTO users (username, email, create_time, update_time, etag)"
            " VALUES ('okname', repeat('a', 255), now(), now(), 'e')",
            "users_email_length",
        ),
        (
            "INSERT INTO users (username, display_name, create_time, update_time, etag)"
            " VALUES ('okname2', repeat('a', 65), now(), now(), 'e')",
            "users_display_name_length",
        ),
        (
            "INSERT INTO idempotency_keys VALUES (repeat('r', 129), 1, 'f', now())",
            "idempotency_keys_request_id_length",
        ),
    ],
)
async def test_check_constraints_refuse_what_validation_refuses(
    postgres_url: str, statement: str, constraint: str
) -> None:
    store = PostgresUserStore(postgres_url)
    await store.open()  # migrates
    await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
            await conn.execute(statement)


async def test_a_frozen_replica_inside_a_create_does_not_stall_another_replicas_create(
    start_server: ServerFactory, postgres_url: str, admin_token: str
) -> None:
    _, port = await start_server(database_url=postgres_url)
    frozen = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; reading does, in a thread
        [sys.executable, "-c", FROZEN_CREATE, conninfo(postgres_url), str(CREATE_LOCK)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert frozen.stdout is not None
        assert await asyncio.to_thread(frozen.stdout.readline) == "locked\n"
        os.kill(frozen.pid, signal.SIGSTOP)
        async with aio_channel(f"127.0.0.1:{port}", token=admin_token) as channel:
            stub: Any = users_pb2_grpc.UserServiceStub(channel)
            started = time.monotonic()
            user = await stub.CreateUser(users_pb2.CreateUserRequest(username="unstuck"), timeout=8)
            took = time.monotonic() - started
        assert user.id > 0
        # Ended by idle_in_transaction_session_timeout (2 s), inside lock_timeout (5 s).
        assert 1.5 < took < 5.5, took
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        frozen.kill()
        frozen.wait()
        if frozen.stdout is not None:
            frozen.stdout.close()
