"""users-backup against a real server's SQLite file under write load, and its restore."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from users.v1 import users_pb2
from users_service import backup
from users_service.config import Settings
from users_service.store.sqlite import connect
from users_service.store.sqlite_migrations import apply_migrations

WRITERS = 8
WARM_WRITES = 200


def usernames(path: Path) -> set[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT username FROM users")}
    finally:
        conn.close()


def database(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


class Writers:
    """CreateUser calls in loops; each username goes into `acked` once its call returned OK."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.stop = asyncio.Event()
        self.warm = asyncio.Event()  # set once WARM_WRITES are acknowledged

    async def write(self, stub: Any, prefix: str) -> None:
        n = 0
        while not self.stop.is_set():
            name = f"{prefix}-{n}"
            await stub.CreateUser(users_pb2.CreateUserRequest(username=name), timeout=10)
            self.acked.append(name)
            if len(self.acked) >= WARM_WRITES:
                self.warm.set()
            n += 1


async def test_copy_under_write_load_holds_every_write_acknowledged_before_it(
    stub: Any, settings: Settings, tmp_path: Path
) -> None:
    load = Writers()
    writers = [asyncio.create_task(load.write(stub, f"w{i}")) for i in range(WRITERS)]
    await asyncio.wait_for(load.warm.wait(), timeout=60)
    before = set(load.acked)
    copy = tmp_path / "copy.db"
    count = await asyncio.to_thread(backup.copy_online, database(settings), copy)
    after = len(load.acked)
    load.stop.set()
    await asyncio.gather(*writers)

    in_copy = usernames(copy)
    assert before <= in_copy
    assert count == len(in_copy)
    assert after > len(before), "the writers were not writing while the copy was taken"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert not copy.with_name("copy.db-wal").exists()


async def test_copy_to_stdout_is_the_database(
    stub: Any, settings: Settings, tmp_path: Path
) -> None:
    await stub.CreateUser(users_pb2.CreateUserRequest(username="ada"), timeout=10)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "users_service.backup", "copy", str(database(settings)), "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    streamed = tmp_path / "streamed.db"
    streamed.write_bytes(result.stdout)
    assert usernames(streamed) == {"ada"}
    assert b"copied 1 users" in result.stderr
    assert sorted(p.name for p in database(settings).parent.iterdir() if ".backup-" in p.name) == []


def make_store(path: Path, *names: str) -> None:
    """A users database of the current schema holding these usernames (WAL, as the service)."""
    conn = connect(path, create=True)
    apply_migrations(conn)
    for name in names:
        conn.execute(
            "INSERT INTO users (username, create_time_us, update_time_us, etag)"
            " VALUES (?, 0, 0, 'e')",
            (name,),
        )
    conn.close()


def test_restore_installs_the_copy_and_keeps_the_database_it_replaces(tmp_path: Path) -> None:
    live, copy = tmp_path / "users.db", tmp_path / "copy.db"
    make_store(live, "old")
    make_store(copy, "ada", "bob")
    (tmp_path / "users.db-wal").write_bytes(b"")  # a sidecar that may hold committed writes

    count, kept = backup.restore(io.BytesIO(copy.read_bytes()), live)

    assert not (tmp_path / "users.db-wal").exists()  # the old sidecar went with its database
    assert kept is not None
    assert kept.with_name(kept.name + "-wal").exists()
    assert (count, usernames(live)) == (2, {"ada", "bob"})
    assert usernames(kept) == {"old"}


@pytest.mark.parametrize("payload", [b"not a database", b""])
def test_restore_refuses_what_is_not_a_users_database_and_changes_nothing(
    tmp_path: Path, payload: bytes
) -> None:
    live = tmp_path / "users.db"
    make_store(live, "old")
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(backup.BackupError, match="not restored"):
        backup.restore(io.BytesIO(payload), live)

    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert usernames(live) == {"old"}


def test_restore_refuses_another_schema(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (username TEXT)")

    with pytest.raises(backup.BackupError, match="schema v0"):
        backup.restore(io.BytesIO(other.read_bytes()), tmp_path / "users.db")
    assert not (tmp_path / "users.db").exists()


def test_copy_of_a_missing_database_says_so(tmp_path: Path, capsys: Any) -> None:
    assert backup.main(["copy", str(tmp_path / "none.db"), str(tmp_path / "copy.db")]) == 1
    assert "no such database file" in capsys.readouterr().err
    assert not (tmp_path / "copy.db").exists()


def test_copy_into_a_directory_keeps_the_newest(tmp_path: Path) -> None:
    live, backups = tmp_path / "users.db", tmp_path / "backups"
    make_store(live, "ada")
    backups.mkdir()
    for day in range(1, 4):  # older copies, as earlier runs left them
        make_store(backups / f"users-2026010{day}T000000Z.db")
    (backups / "notes.txt").write_text("not a copy: never pruned")

    assert backup.main(["copy", str(live), str(backups), "--keep", "2"]) == 0

    names = sorted(p.name for p in backups.iterdir())
    assert names[0] == "notes.txt"
    assert names[1] == "users-20260103T000000Z.db"
    assert len(names) == 3
    assert usernames(backups / names[2]) == {"ada"}
