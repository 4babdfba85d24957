"""plumbing.runtime: grpc core's experiments, the process's default unless the operator set them."""

from __future__ import annotations

import pytest
from plumbing.runtime import (
    CLIENT_EXPERIMENTS,
    EXPERIMENTS_VARIABLE,
    SERVER_EXPERIMENTS,
    tune_grpc_core,
)


@pytest.mark.parametrize("experiments", [SERVER_EXPERIMENTS, CLIENT_EXPERIMENTS])
def test_an_operators_setting_wins_even_an_empty_one(experiments: str) -> None:
    assert tune_grpc_core(experiments, {}) == experiments
    assert tune_grpc_core(experiments, {EXPERIMENTS_VARIABLE: ""}) == ""
    operators = {EXPERIMENTS_VARIABLE: "-event_engine_client"}
    assert tune_grpc_core(experiments, operators) == "-event_engine_client"


def test_the_value_in_force_is_left_in_the_environment() -> None:
    environ: dict[str, str] = {}
    tune_grpc_core(SERVER_EXPERIMENTS, environ)
    assert environ == {EXPERIMENTS_VARIABLE: SERVER_EXPERIMENTS}
