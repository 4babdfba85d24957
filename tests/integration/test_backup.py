"""`make backup` under write load and `make restore` into a fresh stack, for both variants.

The backup holds every write acknowledged before it started (and is sound: integrity_check, or
pg_restore's table of contents); restored into a new project whose volume does not exist yet, the
stack serves the same users: the same count, and a sample read back field for field.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from testkit.ports import free_port
from users.v1 import users_pb2, users_pb2_grpc

from tests.integration.stack import ROOT, Stack, run, tls_channel

WRITERS = 4
WARM_WRITES = 100
SAMPLE = 25
TIMEOUT = 10
STACK_SECONDS = 1200


class Writers:
    """Threads calling CreateUser until stopped; `acked` holds every username answered OK."""

    def __init__(self, target: str, prefix: str) -> None:
        self.target, self.prefix = target, prefix
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.warm = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(i,)) for i in range(WRITERS)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        assert self.warm.wait(120), f"only {len(self.acked)} writes acknowledged"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.acked)

    def _write(self, writer: int) -> None:
        with tls_channel(self.target) as channel:
            users = users_pb2_grpc.UserServiceStub(channel)
            n = 0
            while not self.stop.is_set():
                name = f"{self.prefix}-{writer}-{n}"
                users.CreateUser(users_pb2.CreateUserRequest(username=name), timeout=TIMEOUT)
                with self.lock:
                    self.acked.append(name)
                    if len(self.acked) >= WARM_WRITES:
                        self.warm.set()
                n += 1


def backup_script(env: dict[str, str], *args: str) -> str:
    """scripts/backup.py ARGS with the stack's environment; its stdout."""
    result = run([sys.executable, str(ROOT / "scripts" / "backup.py"), *args], env=env, timeout=600)
    return result.stdout.strip()


def backup_under_load(stack: Stack, target: str, directory: Path) -> tuple[Path, set[str], int]:
    """The backup's path, the writes acknowledged before it began, and how many came after."""
    with Writers(target, f"b{uuid.uuid4().hex[:8]}") as load:
        before = load.snapshot()
        printed = backup_script({**stack.env, "BACKUP_DIR": str(directory)}, "backup")
        during = len(load.snapshot()) - len(before)
    path = Path(printed.splitlines()[-1])
    assert path.parent == directory
    assert path.is_file()
    assert path.stat().st_mode & 0o077 == 0, "a backup is readable by others"
    return path, before, during


def all_users(target: str) -> dict[str, users_pb2.User]:
    with tls_channel(target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        stream = users.GetUsers(users_pb2.GetUsersRequest(), timeout=60, wait_for_ready=True)
        return {user.username: user for user in stream}


def by_username(target: str, names: list[str]) -> list[users_pb2.User]:
    with tls_channel(target) as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        request = users_pb2.GetUserRequest
        return [users.GetUser(request(username=name), timeout=TIMEOUT) for name in names]


@contextmanager
def fresh_project(stack: Stack, name: str) -> Iterator[Stack]:
    """A project of its own on the same images; nothing exists for it yet. Removed after."""
    env = {
        **stack.env,
        "COMPOSE_PROJECT_NAME": f"userstack-{name}-{uuid.uuid4().hex[:8]}",
        "USERSTACK_GRPC_PORT": str(free_port()),
        "USERSTACK_HTTP_PORT": str(free_port()),
    }
    fresh = Stack(
        env["COMPOSE_PROJECT_NAME"],
        int(env["USERSTACK_GRPC_PORT"]),
        int(env["USERSTACK_HTTP_PORT"]),
        env,
        stack.files,
    )
    try:
        yield fresh
    finally:
        fresh.compose("down", "--volumes", "--remove-orphans")


def up(stack: Stack, *args: str) -> None:
    """compose up --wait on the stack's images; the services' logs in the error when it fails."""
    try:
        stack.compose("up", "--wait", "--no-build", *args, timeout=600)
    except AssertionError as error:
        logs = stack.compose("logs", "--no-color", "--tail", "60").stdout
        raise AssertionError(f"{error}\n{logs}") from None


def volumes(project: str) -> list[str]:
    listing = run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"]
    )
    return listing.stdout.split()


def assert_serves_the_same(source: str, restored: str, names: set[str]) -> None:
    """The restored stack holds exactly `names`; a sample reads back as the source serves it."""
    served = all_users(restored)
    assert set(served) == names
    sample = random.sample(sorted(names), min(SAMPLE, len(names)))
    assert by_username(restored, sample) == by_username(source, sample)


def sqlite_usernames(path: Path) -> set[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {row[0] for row in conn.execute("SELECT username FROM users")}
    finally:
        conn.close()


@pytest.mark.timeout(STACK_SECONDS)  # a second stack starts, on the same images
def test_sqlite_backup_under_load_restores_into_a_fresh_stack(stack: Stack, tmp_path: Path) -> None:
    path, before, during = backup_under_load(stack, stack.grpc_target, tmp_path)

    assert re.fullmatch(rf"{stack.project}-sqlite-\d{{8}}T\d{{6}}Z\.db", path.name)
    in_backup = sqlite_usernames(path)
    assert before <= in_backup
    assert during > 0, "no write was acknowledged while the backup ran: not under load"

    with fresh_project(stack, "restored") as fresh:
        assert volumes(fresh.project) == []
        said = backup_script(fresh.env, "restore", str(path))
        assert f"restored {len(in_backup)} users" in said
        assert volumes(fresh.project) == [f"{fresh.project}_users-data"]
        up(fresh)
        assert_serves_the_same(stack.grpc_target, fresh.grpc_target, in_backup)


def test_restore_refuses_a_running_stack(stack: Stack, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as conn:
        conn.execute("CREATE TABLE t (x)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "backup.py"), "restore", str(copy)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "stop the stack first" in result.stderr


def first_replica(stack: Stack) -> str:
    address = stack.compose("port", "--index", "1", "users", "50051").stdout.strip()
    return f"127.0.0.1:{address.rpartition(':')[2]}"


def dump_usernames(stack: Stack, dump: Path) -> set[str]:
    """The usernames in a pg_dump file, read by the stack's own pg_restore (as plain SQL)."""
    command = ["docker", "compose", "-p", stack.project]
    command += [arg for file in stack.files for arg in ("-f", str(file))]
    command += ["exec", "-T", "postgres", "pg_restore", "--data-only", "--table=users", "-f", "-"]
    with dump.open("rb") as source:
        result = subprocess.run(
            command, env=stack.env, stdin=source, capture_output=True, timeout=120, check=True
        )
    text = result.stdout.decode()
    header = re.search(r"^COPY public\.users \(([^)]*)\) FROM stdin;$", text, re.MULTILINE)
    assert header, text[:2000]
    column = [c.strip() for c in header.group(1).split(",")].index("username")
    rows = text[header.end() :].split("\n\\.", 1)[0].strip().splitlines()
    return {row.split("\t")[column] for row in rows}


@pytest.mark.timeout(
    STACK_SECONDS
)  # its module's first use of the scaled stack builds and starts it
def test_postgres_backup_under_load_restores_into_a_fresh_stack(
    scaled_stack: Stack, tmp_path: Path
) -> None:
    source = first_replica(scaled_stack)
    path, before, during = backup_under_load(scaled_stack, source, tmp_path)

    assert re.fullmatch(rf"{scaled_stack.project}-postgres-\d{{8}}T\d{{6}}Z\.dump", path.name)
    in_backup = dump_usernames(scaled_stack, path)
    assert before <= in_backup
    assert during > 0, "no write was acknowledged while the backup ran: not under load"

    with fresh_project(scaled_stack, "restored-pg") as fresh:
        assert volumes(fresh.project) == []
        said = backup_script(fresh.env, "restore", str(path))
        assert f"restored {len(in_backup)} users into postgres" in said
        assert "kept as" not in said  # a new database: nothing replaced
        assert f"{fresh.project}_postgres-data" in volumes(fresh.project)
        up(fresh, "--scale", "users=1")
        assert_serves_the_same(source, first_replica(fresh), in_backup)


def test_restore_over_a_database_with_users_keeps_them_in_a_backup(
    scaled_stack: Stack, tmp_path: Path
) -> None:
    """Restoring the scaled stack's own dump over it: the users it held are dumped first."""
    dump = Path(backup_script({**scaled_stack.env, "BACKUP_DIR": str(tmp_path)}, "backup"))
    scaled_stack.compose("stop", "users", "webapp")
    try:
        said = backup_script(scaled_stack.env, "restore", str(dump))
    finally:
        up(scaled_stack)
    kept = Path(said.rpartition("kept as ")[2].strip())
    assert kept.is_file()
    assert kept != dump
    assert dump_usernames(scaled_stack, kept) == dump_usernames(scaled_stack, dump)
    assert set(all_users(first_replica(scaled_stack))) == dump_usernames(scaled_stack, dump)


def test_backup_of_a_stopped_stack_says_so(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": f"userstack-none-{uuid.uuid4().hex[:8]}",
        "BACKUP_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "backup.py"), "backup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "the stack is not running" in result.stderr
    assert list(tmp_path.iterdir()) == []
