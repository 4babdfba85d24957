"""The service sets grpc core's experiments before grpc loads, and the pinned grpcio knows them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from users_service.grpc_tuning import EXPERIMENTS, EXPERIMENTS_VARIABLE, tune_grpc_core

from .conftest import ServerProcess


def listening_line(proc: ServerProcess) -> dict[str, object]:
    line: dict[str, object] = json.loads(proc.wait_for_log(r'"message": "listening"'))
    return line


def test_an_operators_setting_wins_even_an_empty_one() -> None:
    assert tune_grpc_core({}) == EXPERIMENTS
    assert tune_grpc_core({EXPERIMENTS_VARIABLE: ""}) == ""
    assert tune_grpc_core({EXPERIMENTS_VARIABLE: "-event_engine_client"}) == "-event_engine_client"


def test_the_process_runs_tuned_and_the_pinned_grpcio_knows_every_experiment(
    spawn_server: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(EXPERIMENTS_VARIABLE, raising=False)
    proc = spawn_server()
    assert listening_line(proc)["grpc_experiments"] == EXPERIMENTS
    # grpc core names each experiment it does not know on stderr (see the next test): a grpcio
    # that dropped one of ours fails here, and the setting is due for a new measurement.
    assert not [line for line in proc.lines if "Unknown experiment" in line], proc.lines


def test_grpc_core_reports_an_experiment_it_does_not_know(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    proc = spawn_server(GRPC_EXPERIMENTS="-no_such_experiment")
    assert listening_line(proc)["grpc_experiments"] == "-no_such_experiment"
    proc.wait_for_log(r"Unknown experiment: no_such_experiment")


def test_an_empty_setting_reaches_grpc_as_it_is(spawn_server: Callable[..., ServerProcess]) -> None:
    proc = spawn_server(GRPC_EXPERIMENTS="")
    assert listening_line(proc)["grpc_experiments"] == ""
