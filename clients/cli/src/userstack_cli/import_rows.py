"""Rows of an import file (NDJSON or CSV) as CreateUserRequests, each with its line number; rows
that cannot be read are reported, never sent and never silently dropped."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from users.v1 import users_pb2

FIELDS = ("username", "email", "display_name", "request_id")


@dataclass(frozen=True)
class Row:
    """One data row of the file: its line, and the request or why it could not be read."""

    line: int
    request: users_pb2.CreateUserRequest | None
    problem: str = ""


def file_format(path: Path, declared: str) -> str:
    """ndjson or csv: as declared, else from the file's extension (.csv, else NDJSON)."""
    if declared != "auto":
        return declared
    return "csv" if path.suffix.lower() == ".csv" else "ndjson"


def read_rows(file: IO[str], kind: str) -> Iterator[Row]:
    """The rows of `file`, NDJSON (one object a line, blank lines skipped) or CSV (a header)."""
    return _csv_rows(file) if kind == "csv" else _ndjson_rows(file)


def _ndjson_rows(file: IO[str]) -> Iterator[Row]:
    for line, text in enumerate(file, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as error:
            yield Row(line, None, f"not JSON: {error}")
            continue
        yield _row(line, value)


def _csv_rows(file: IO[str]) -> Iterator[Row]:
    reader = csv.DictReader(file)
    if reader.fieldnames is None or "username" not in reader.fieldnames:
        yield Row(1, None, "a CSV file needs a header line naming a username column")
        return
    for record in reader:
        yield _row(reader.line_num, {k: v for k, v in record.items() if k is not None})


def _row(line: int, value: object) -> Row:
    """A row from a decoded object; other keys (an export's id, times, etag) are ignored."""
    if not isinstance(value, dict):
        return Row(line, None, "not a JSON object")
    fields = {name: value.get(name) for name in FIELDS if value.get(name) is not None}
    wrong = [name for name, given in fields.items() if not isinstance(given, str)]
    if wrong:
        return Row(line, None, f"{wrong[0]}: expected a string")
    request = users_pb2.CreateUserRequest()
    for name, given in fields.items():
        setattr(request, name, given)
    return Row(line, request)


def count_rows(path: Path) -> int:
    """How many non-blank lines the file has (the progress bar's length; a CSV header included)."""
    with path.open("rb") as file:
        return sum(1 for line in file if line.strip())
