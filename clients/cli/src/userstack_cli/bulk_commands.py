"""export, import, watch: the streams (NDJSON out, a file in, the change feed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import click
import grpc
from users.v1 import users_pb2

from userstack_cli.errors import CliError, ExitCode
from userstack_cli.import_rows import Row, count_rows, file_format, read_rows
from userstack_cli.output import as_dict, chosen, json_line, print_json, table
from userstack_cli.session import Session

WEEK_SECONDS = 7 * 24 * 3600.0
_stream_timeout = click.option(
    "--stream-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="deadline of the whole stream, seconds",
)


@click.command()
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--prefix", default="", help="only users whose username starts with this")
@_stream_timeout
@click.pass_obj
def export(session: Session, file: str, prefix: str, stream_timeout: float) -> None:
    """Write every user (in id order) as NDJSON (one JSON object a line) to FILE, or stdout."""
    request = users_pb2.ExportUsersRequest(username_prefix=prefix)
    batches = session.users.ExportUsers(request, timeout=stream_timeout)
    count = 0
    with click.open_file(file, "w", encoding="utf-8", atomic=file != "-") as out:
        for batch in batches:
            out.writelines(json_line(as_dict(user)) + "\n" for user in batch.users)
            count += len(batch.users)
    if file != "-":
        click.echo(f"exported {count} users to {file}", err=True)


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "kind", type=click.Choice(["auto", "ndjson", "csv"]), default="auto")
@click.option("--progress/--no-progress", default=None, help="default: on a terminal")
@_stream_timeout
@click.pass_obj
def import_users(
    session: Session, file: Path, kind: str, progress: bool | None, stream_timeout: float
) -> None:
    """Create users from FILE (NDJSON, or CSV with a header) through ImportUsers.

    Existing usernames are left as they are; rejected rows are listed with their line and
    reason, and make the exit code 2 (the other rows are created)."""
    sent: list[int] = []  # the file line of each request, in stream order
    unread: list[dict[str, Any]] = []
    show = sys.stderr.isatty() if progress is None else progress
    with (
        file.open(encoding="utf-8", newline="") as source,
        click.progressbar(
            length=count_rows(file),
            label="importing",
            file=sys.stderr if show else cast(TextIO, _Null()),
        ) as bar,
    ):

        def requests() -> Iterator[users_pb2.CreateUserRequest]:
            for row in read_rows(source, file_format(file, kind)):
                bar.update(1)
                if row.request is None:
                    unread.append(_unread(row))
                else:
                    sent.append(row.line)
                    yield row.request

        summary = session.users.ImportUsers(requests(), timeout=stream_timeout)
    _report(summary, sent, unread, session.output)


def _unread(row: Row) -> dict[str, Any]:
    return {"line": row.line, "username": "", "field": "", "reason": row.problem}


def _report(summary: Any, sent: list[int], unread: list[dict[str, Any]], output: str) -> None:
    rejections = unread + [
        {"line": sent[r.index], "username": r.username, "field": r.field, "reason": r.reason}
        for r in summary.rejections
    ]
    rejections.sort(key=lambda r: int(r["line"]))
    rejected = summary.rejected_count + len(unread)
    report = {
        "created": summary.created_count,
        "existing": summary.existing_count,
        "rejected": rejected,
        "rejections": rejections,
    }
    if chosen(output) == "json":
        print_json(report)
    else:
        click.echo(
            f"created {report['created']}, already existing {report['existing']},"
            f" rejected {rejected}"
        )
        if rejections:
            rows = [[str(r["line"]), r["username"], r["field"], r["reason"]] for r in rejections]
            click.echo(table(rows, ["LINE", "USERNAME", "FIELD", "REASON"]))
        if rejected > len(rejections):
            click.echo(f"(and {rejected - len(rejections)} more the server did not list)")
    if rejected:
        raise SystemExit(ExitCode.INVALID)


class _Null:
    """A file that is not a terminal and takes nothing: the progress bar hidden."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        return False


@click.command()
@click.option(
    "--for",
    "seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="stop after this many seconds (default: until Ctrl-C)",
)
@click.pass_obj
def watch(session: Session, seconds: float | None) -> None:
    """Print every change (created, updated, deleted) as it happens, until Ctrl-C."""
    call = session.users.WatchUsers(users_pb2.WatchUsersRequest(), timeout=seconds or WEEK_SECONDS)
    as_json = chosen(session.output) == "json"
    try:
        call.initial_metadata()  # sent once the server has subscribed this watch
        click.echo(f"watching {session.connection.target} (Ctrl-C to stop)", err=True)
        for event in call:
            click.echo(json_line(as_dict(event)) if as_json else _event_line(event))
    except KeyboardInterrupt:
        call.cancel()
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED or seconds is None:
            raise
    else:
        raise CliError("the server ended the change feed (draining?)", ExitCode.UNAVAILABLE)


def _event_line(event: users_pb2.UserEvent) -> str:
    kind = users_pb2.UserEventType.Name(event.type).removeprefix("USER_EVENT_TYPE_")
    user = event.user
    when = event.event_time.ToJsonString()
    return f"{when}  {kind:<7}  {user.id}  {user.username}  {user.email}".rstrip()


COMMANDS = [export, import_users, watch]
