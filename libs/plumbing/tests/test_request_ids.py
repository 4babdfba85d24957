"""plumbing.request_ids: which caller ids are kept, and a fresh one otherwise."""

from __future__ import annotations

import contextvars
import re

import pytest
from plumbing.request_ids import (
    MAX_LENGTH,
    REQUEST_ID_KEY,
    from_metadata,
    outgoing_metadata,
    request_id_var,
    well_formed,
)

FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("value", ["r-1", "A.b_c:d-9", "x" * MAX_LENGTH])
def test_well_formed_ids(value: str) -> None:
    assert well_formed(value)


@pytest.mark.parametrize(
    "value", ["", "x" * (MAX_LENGTH + 1), "has space", "r-1\n", "semi;colon", "é"]
)
def test_ill_formed_ids_are_refused_on_a_full_match(value: str) -> None:
    assert not well_formed(value)


def test_the_first_well_formed_id_in_the_metadata_is_kept() -> None:
    metadata = [("other", "x"), (REQUEST_ID_KEY, "bad id"), (REQUEST_ID_KEY, "r-2")]
    assert from_metadata(metadata) == "r-2"


@pytest.mark.parametrize(
    "metadata", [None, [], [(REQUEST_ID_KEY, "bad id")], [(REQUEST_ID_KEY, b"r-1")]]
)
def test_without_a_usable_id_a_fresh_one_is_drawn(
    metadata: list[tuple[str, object]] | None,
) -> None:
    first, second = from_metadata(metadata), from_metadata(metadata)
    assert FRESH.fullmatch(first)
    assert first != second


def test_the_current_id_is_passed_on_and_none_outside_a_request() -> None:
    def inside() -> tuple[tuple[str, str], ...]:
        request_id_var.set("req-7")
        return outgoing_metadata()

    assert contextvars.copy_context().run(inside) == ((REQUEST_ID_KEY, "req-7"),)
    assert contextvars.copy_context().run(outgoing_metadata) == ()
