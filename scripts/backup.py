"""`make backup` and `make restore FILE=...`: the stack's data to a file on the host and back.

backup: a consistent copy of the running stack's store, whichever variant runs: SQLite through
`users-backup copy` in the users container (the online backup API, while it serves writes), or
PostgreSQL through `pg_dump` in the stack's own postgres container. The file goes to backups/
(BACKUP_DIR), named for the project, store and time; its path is the last line printed.

restore: the file back into a stopped stack, its volume created when it was removed; the variant
comes from the file (SQLite's header or pg_dump's). What it replaces is kept (docs/operations.md).
Stdlib only: it runs on the host's python3 (COMPOSE_PROJECT_NAME and .env work as for compose).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
SQLITE_FILES: tuple[str, ...] = ("compose.yaml",)
POSTGRES_FILES: tuple[str, ...] = ("compose.yaml", "compose.scale.yaml")
SQLITE_DATABASE = "/data/users.db"  # compose.yaml's USERS_DATABASE_URL, on the users-data volume
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
# pg_dump as the superuser over the container's own socket (trusted there, never over TCP).
PG = ("--username=postgres", "--dbname=users")
COMMAND_TIMEOUT = 3600  # a large store takes a while; a hung engine must not hang us forever


class BackupError(Exception):
    """A step failed; the message says which and why."""


def compose(files: Sequence[str], *args: str) -> list[str]:
    return ["docker", "compose", *(arg for name in files for arg in ("-f", name)), *args]


def run(
    command: list[str], *, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs a command from the repository root; BackupError with its stderr when it fails."""
    result = subprocess.run(
        command,
        cwd=ROOT,
        stdin=stdin,
        stdout=stdout or subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise BackupError(f"{' '.join(command)} exited {result.returncode}: {detail}")
    return result


def running() -> set[str]:
    """The project's services with a running container (asked of the engine: no compose files)."""
    label = f"label=com.docker.compose.project={project()}"
    service = '{{.Label "com.docker.compose.service"}}'
    out = run(["docker", "ps", "--filter", label, "--format", service]).stdout
    return set(out.decode().split())


def project() -> str:
    """compose's: COMPOSE_PROJECT_NAME, else compose.yaml's `name:`."""
    return os.environ.get("COMPOSE_PROJECT_NAME") or "userstack"


def backup(directory: Path) -> Path:
    """Writes the running stack's data into `directory`; the new file's path."""
    services = running()
    if "postgres" in services:
        files, store, suffix = POSTGRES_FILES, "postgres", "dump"
        command = compose(files, "exec", "-T", "postgres", "pg_dump", *PG, "--format=custom")
    elif "users" in services:
        files, store, suffix = SQLITE_FILES, "sqlite", "db"
        copy = ("users-backup", "copy", SQLITE_DATABASE, "-")
        command = compose(files, "exec", "-T", "users", *copy)
    else:
        raise BackupError("the stack is not running: `make up` (or up-scaled) first")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = directory / f"{project()}-{store}-{stamp}.{suffix}"
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "xb") as out:
            os.chmod(partial, 0o600)  # the users' data: the owner's only
            run(command, stdout=out)
        verify(files, store, partial)
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def verify(files: Sequence[str], store: str, path: Path) -> None:
    """The copy reads back: its header, and pg_restore's table of contents for a dump."""
    head = path.read_bytes()[:16] if path.stat().st_size else b""
    if store == "sqlite" and head != SQLITE_MAGIC:
        raise BackupError(f"the copy is not a SQLite database ({len(head)} bytes of header)")
    if store == "postgres":
        if not head.startswith(PG_DUMP_MAGIC):
            raise BackupError("the dump is not in pg_dump's custom format")
        with open(path, "rb") as dump:
            run(compose(files, "exec", "-T", "postgres", "pg_restore", "--list"), stdin=dump)


def restore(path: Path) -> str:
    """Restores `path` into the stopped stack; what was done, in a line or two."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file (make restore FILE=backups/...)")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head == SQLITE_MAGIC:
        return restore_sqlite(path)
    if head.startswith(PG_DUMP_MAGIC):
        return restore_postgres(path)
    raise BackupError(f"{path}: neither a SQLite copy nor a pg_dump custom-format file")


def build_input(script: str) -> None:
    """Exports the KEY=value a build-input script prints last, unless the caller set KEY.

    compose needs BASE_IMAGE (and POSTGRES_IMAGE) to name the images `make up` built; on an
    engine with no registry their defaults would be pulled.
    """
    key = {"build-inputs.sh": "BASE_IMAGE", "postgres-image.sh": "POSTGRES_IMAGE"}[script]
    if not os.environ.get(key):
        line = run([str(ROOT / "scripts" / script)]).stdout.decode().strip().splitlines()[-1]
        os.environ[key] = line.partition("=")[2]


def refuse_if_serving() -> None:
    if "users" in running():
        raise BackupError("the users service is running: stop the stack first (`make down`)")


def restore_sqlite(path: Path) -> str:
    """users-backup restore in a one-off users container on the stack's volume (made if gone)."""
    refuse_if_serving()
    build_input("build-inputs.sh")
    command = compose(SQLITE_FILES, "run", "--rm", "--no-deps", "-T", "users")
    command += ["users-backup", "restore", SQLITE_DATABASE, "-"]
    with open(path, "rb") as source:
        result = run(command, stdin=source)
    return result.stderr.decode(errors="replace").strip()


def restore_postgres(path: Path) -> str:
    """pg_restore into the stack's postgres alone, started for it and stopped after.

    A database that already holds users is dumped first, into the backup directory.
    """
    refuse_if_serving()
    build_input("build-inputs.sh")
    build_input("postgres-image.sh")
    run(compose(POSTGRES_FILES, "up", "--detach", "--wait", "--no-build", "postgres"))
    try:
        said = []
        if postgres_users() > 0:
            kept = backup(path.parent)
            said.append(f"the database it replaced is kept as {kept}")
        restore_args = ["--clean", "--if-exists", "--single-transaction", "--exit-on-error"]
        with open(path, "rb") as dump:
            command = compose(POSTGRES_FILES, "exec", "-T", "postgres", "pg_restore", *PG)
            run([*command, *restore_args], stdin=dump)
        said.insert(0, f"restored {postgres_users()} users into postgres")
        return "\n".join(said)
    finally:
        run(compose(POSTGRES_FILES, "stop", "postgres"))


def postgres_users() -> int:
    """How many users the stack's database holds (0 before the service made its tables)."""

    def psql(query: str) -> str:
        command = compose(POSTGRES_FILES, "exec", "-T", "postgres", "psql", *PG, "-Atc", query)
        return run(command).stdout.decode().strip()

    if psql("SELECT to_regclass('public.users') IS NULL") == "t":
        return 0
    return int(psql("SELECT count(*) FROM users"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="copy the running stack's data into BACKUP_DIR")
    put = commands.add_parser("restore", help="restore FILE into the stopped stack")
    put.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "backup":
            directory = Path(os.environ.get("BACKUP_DIR") or ROOT / "backups")
            print(backup(directory.resolve()))
        else:
            print(restore(args.file.resolve()))
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
