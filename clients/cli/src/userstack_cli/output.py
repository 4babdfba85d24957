"""What the commands print: a table for people, JSON (one document, or NDJSON for streams) for
scripts. `--output auto` (the default) means a table on a terminal and JSON otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from google.protobuf import json_format
from google.protobuf.message import Message

FORMATS = ("auto", "table", "json")
USER_COLUMNS = (
    ("ID", "id"),
    ("USERNAME", "username"),
    ("EMAIL", "email"),
    ("DISPLAY NAME", "display_name"),
    ("CREATED", "create_time"),
)


def chosen(output: str) -> str:
    """table or json: `auto` is a table when stdout is a terminal."""
    if output == "auto":
        return "table" if sys.stdout.isatty() else "json"
    return output


def as_dict(message: Message) -> dict[str, Any]:
    """A message as proto3 JSON with the .proto's field names, every field present; a user's
    int64 id as a number (proto3 JSON would make it a string)."""
    value: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _numeric_ids(value)
    return value


def _numeric_ids(value: dict[str, Any]) -> None:
    if "id" in value and isinstance(value["id"], str) and value["id"].isdigit():
        value["id"] = int(value["id"])
    for nested in value.values():
        if isinstance(nested, dict):
            _numeric_ids(nested)


def json_line(value: Any) -> str:
    """One compact JSON document on one line (NDJSON)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def print_json(value: Any) -> None:
    """One JSON document, indented for people who read it too."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns two spaces apart, a header line first."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def user_rows(users: Iterable[dict[str, Any]]) -> list[list[str]]:
    """The users as table rows (USER_COLUMNS)."""
    return [[str(u.get(key, "")) for _, key in USER_COLUMNS] for u in users]


def print_users(users: list[dict[str, Any]], output: str, *, many: bool) -> None:
    """Users as a table, or JSON: one object (many=False) or an array."""
    if chosen(output) == "json":
        print_json(users if many else users[0])
    elif users or not many:
        click.echo(table(user_rows(users), [h for h, _ in USER_COLUMNS]))
    else:
        click.echo("no users")


def print_fields(value: dict[str, Any], output: str) -> None:
    """One object: JSON, or `key: value` lines."""
    if chosen(output) == "json":
        print_json(value)
    else:
        click.echo(table([[f"{k}:", str(v)] for k, v in value.items()], ["", ""]).lstrip("\n"))
