"""users-backup: a consistent copy of a live SQLite store, and its restore (docs/operations.md).

`users-backup copy /data/users.db -` writes the copy to stdout (`make backup` runs it in the
running container); `users-backup copy /data/users.db /backups/ --keep 7` writes a timestamped file
into a directory and keeps the newest 7 there (the Kubernetes CronJob, deploy/examples/backup/).
`users-backup restore /data/users.db -` installs a copy read from stdin into a
stopped store, keeping whatever it replaces beside it (`make restore`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import BinaryIO

from users_service.store.sqlite_migrations import SCHEMA_VERSION

# A writer may hold the lock briefly when the copy starts; wait for it rather than fail.
BUSY_TIMEOUT_MS = 10_000
CHUNK = 1 << 20


class BackupError(Exception):
    """The copy or the file to restore is not a sound users database."""


def copy_online(source: Path, dest: Path) -> int:
    """Copies the live database at `source` into the new file `dest`; returns its user count.

    The online backup API in one step reads one snapshot: every transaction committed before it
    began is in the copy, and writers (WAL mode) carry on meanwhile. The copy is checked
    (integrity_check, schema version) and left in rollback-journal mode: one self-contained file.
    """
    if not source.is_file():
        raise BackupError(f"{source}: no such database file")
    partial = dest.with_name(f".{dest.name}.partial")
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: the whole database from one read transaction
            dst.execute("PRAGMA journal_mode = DELETE")
            count = check(dst)
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(partial)
    partial.rename(dest)
    return count


def check(conn: sqlite3.Connection) -> int:
    """Raises BackupError unless the database is intact and of our schema; its user count."""
    result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        raise BackupError(f"integrity_check failed: {'; '.join(map(str, result[:5]))}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise BackupError(f"schema v{version}, this service reads v{SCHEMA_VERSION}")
    return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])


def restore(source: BinaryIO, database: Path) -> tuple[int, Path | None]:
    """Installs the copy read from `source` as `database` (its service stopped).

    Returns the user count and where the database it replaced went (with its -wal and -shm files,
    which may hold committed writes): nothing is deleted.
    """
    incoming = database.with_name(f".{database.name}.restoring")
    with incoming.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
    try:
        conn = sqlite3.connect(f"{incoming.resolve().as_uri()}?mode=rw", uri=True)
        try:
            count = check(conn)
        finally:
            conn.close()
    except (BackupError, sqlite3.DatabaseError) as error:
        incoming.unlink()
        raise BackupError(f"not restored: {error}") from error
    _fsync(incoming)
    kept = _set_aside(database)
    incoming.rename(database)
    return count, kept


def _set_aside(database: Path) -> Path | None:
    if not database.exists():
        return None
    kept = database.with_name(
        f"{database.name}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    )
    for suffix in ("-wal", "-shm"):
        sidecar = database.with_name(database.name + suffix)
        if sidecar.exists():
            sidecar.rename(kept.with_name(kept.name + suffix))
    database.rename(kept)
    return kept


def _fsync(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _copy_to_stdout(source: Path) -> int:
    """The copy beside the database (same volume, same space), streamed out, then removed."""
    temporary = source.with_name(f".{source.name}.backup-{os.getpid()}")
    try:
        count = copy_online(source, temporary)
        with temporary.open("rb") as copy:
            shutil.copyfileobj(copy, sys.stdout.buffer, CHUNK)
        sys.stdout.buffer.flush()
        return count
    finally:
        temporary.unlink(missing_ok=True)


def copy_into(source: Path, directory: Path, keep: int) -> tuple[Path, int]:
    """A copy named users-<UTC time>.db in `directory`; then only the newest `keep` remain."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = directory / f"users-{stamp}.db"
    count = copy_online(source, dest)
    for old in sorted(directory.glob("users-*Z.db"))[:-keep]:
        old.unlink()
    return dest, count


def _copy(database: Path, dest: str, keep: int) -> None:
    if dest == "-":
        count, where = _copy_to_stdout(database), "stdout"
    elif Path(dest).is_dir():
        path, count = copy_into(database, Path(dest), keep)
        where = str(path)
    else:
        count, where = copy_online(database, Path(dest)), dest
    print(f"copied {count} users from {database} to {where}", file=sys.stderr)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="users-backup", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="a consistent copy of the live database")
    copy.add_argument("database", type=Path)
    copy.add_argument("dest", help="a new file, a directory (users-<time>.db), or - for stdout")
    copy.add_argument(
        "--keep", type=_at_least_one, default=7, help="copies kept in a directory (default 7)"
    )
    put = commands.add_parser("restore", help="install a copy into a stopped store")
    put.add_argument("database", type=Path)
    put.add_argument("source", help="the copy, or - for stdin")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        if args.command == "copy":
            _copy(args.database, args.dest, args.keep)
        else:
            with sys.stdin.buffer if args.source == "-" else open(args.source, "rb") as source:
                count, kept = restore(source, args.database)
            print(f"restored {count} users into {args.database}", file=sys.stderr)
            if kept:
                print(f"the database it replaced is kept as {kept}", file=sys.stderr)
    except (BackupError, sqlite3.Error, OSError) as error:
        print(f"users-backup: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
