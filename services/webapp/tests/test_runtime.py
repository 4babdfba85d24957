"""How the webapp runs: grpc core's experiments, set before grpc loads, and the threads' CPU
scheduling policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from plumbing.runtime import CLIENT_EXPERIMENTS as EXPERIMENTS
from plumbing.runtime import EXPERIMENTS_VARIABLE
from testkit.processes import thread_policies
from webapp.config import ConfigError, Settings

from .conftest import UsersService, Webapp

# What `python -m webapp` does first, then a channel that connects (nothing listens: it fails).
_PROGRAM = """
import asyncio
from plumbing.runtime import CLIENT_EXPERIMENTS, tune_grpc_core
print(tune_grpc_core(CLIENT_EXPERIMENTS), flush=True)
import grpc
async def connect():
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), 0.5)
        except asyncio.TimeoutError:
            pass
asyncio.run(connect())
"""


def start_a_channel(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", _PROGRAM]
    return subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.slow
def test_the_pinned_grpcio_knows_every_experiment_the_webapp_turns_off() -> None:
    environ = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_VARIABLE}
    tuned = start_a_channel(environ)
    assert tuned.stdout.strip() == EXPERIMENTS
    assert "Unknown experiment" not in tuned.stderr, tuned.stderr
    # The check above can fail: grpc core names an experiment it does not know.
    unknown = start_a_channel({**environ, EXPERIMENTS_VARIABLE: "-no_such_experiment"})
    assert "Unknown experiment: no_such_experiment" in unknown.stderr, unknown.stderr


def test_every_thread_of_the_webapp_runs_batch_scheduled(webapp: Webapp) -> None:
    assert len(os.listdir(f"/proc/{webapp.pid}/task")) > 2  # grpc's threads are there
    assert thread_policies(webapp.pid) == {os.SCHED_BATCH}


@pytest.mark.slow
def test_normal_scheduling_on_request(users: UsersService) -> None:
    app = Webapp(users.address, WEBAPP_CPU_SCHEDULING="normal")
    try:
        assert thread_policies(app.pid) == {os.SCHED_OTHER}
    finally:
        app.stop()


def test_an_unknown_scheduling_policy_is_refused_by_name() -> None:
    environ = {"WEBAPP_SECRET_KEY": "x" * 32, "WEBAPP_CPU_SCHEDULING": "fifo"}
    with pytest.raises(ConfigError, match=r"WEBAPP_CPU_SCHEDULING='fifo'.*batch, normal"):
        Settings.from_env(environ)
