"""How the process runs: grpc core's experiments, set before grpc loads, and the threads'
CPU scheduling policy."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from plumbing.runtime import EXPERIMENTS_VARIABLE
from plumbing.runtime import SERVER_EXPERIMENTS as EXPERIMENTS
from testkit.processes import thread_policies
from users_service.config import ConfigError, Settings

from .conftest import ServerProcess


def listening_line(proc: ServerProcess) -> dict[str, object]:
    line: dict[str, object] = json.loads(proc.wait_for_log(r'"message": "listening"'))
    return line


@pytest.mark.slow
def test_the_process_runs_tuned_and_the_pinned_grpcio_knows_every_experiment(
    spawn_server: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(EXPERIMENTS_VARIABLE, raising=False)
    proc = spawn_server()
    line = listening_line(proc)
    assert (line["grpc_experiments"], line["cpu_scheduling"]) == (EXPERIMENTS, "batch")
    # grpc core names each experiment it does not know on stderr (see the next test): a grpcio
    # that dropped one of ours fails here, and the setting is due for a new measurement.
    assert not [line for line in proc.lines if "Unknown experiment" in line], proc.lines
    # grpc's threads (its poller, its timers) were started after the policy was set.
    assert len(os.listdir(f"/proc/{proc.process.pid}/task")) > 2
    assert thread_policies(proc.process.pid) == {os.SCHED_BATCH}


@pytest.mark.slow
def test_grpc_core_reports_an_experiment_it_does_not_know(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    proc = spawn_server(GRPC_EXPERIMENTS="-no_such_experiment")
    assert listening_line(proc)["grpc_experiments"] == "-no_such_experiment"
    proc.wait_for_log(r"Unknown experiment: no_such_experiment")


@pytest.mark.slow
def test_normal_scheduling_and_grpcs_own_defaults_on_request(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    proc = spawn_server(GRPC_EXPERIMENTS="", USERS_CPU_SCHEDULING="normal")
    line = listening_line(proc)
    assert (line["grpc_experiments"], line["cpu_scheduling"]) == ("", "normal")
    assert thread_policies(proc.process.pid) == {os.SCHED_OTHER}


def test_an_unknown_scheduling_policy_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"USERS_CPU_SCHEDULING='fifo'.*batch, normal"):
        Settings.from_env({"USERS_CPU_SCHEDULING": "fifo"})


@pytest.mark.slow
def test_normal_scheduling_leaves_the_policy_it_was_started_with(
    spawn_server: Callable[..., ServerProcess],
) -> None:
    # As if started under `chrt --batch 0`: the child inherits this thread's policy.
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    try:
        proc = spawn_server(USERS_CPU_SCHEDULING="normal")
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    assert listening_line(proc)["cpu_scheduling"] == "batch"
    assert thread_policies(proc.process.pid) == {os.SCHED_BATCH}
