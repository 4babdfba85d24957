"""The webapp sets grpc core's experiments before grpc loads, and the pinned grpcio knows them."""

from __future__ import annotations

import os
import subprocess
import sys

from webapp.grpc_tuning import EXPERIMENTS, EXPERIMENTS_VARIABLE, tune_grpc_core

# What `python -m webapp` does first, then a channel that connects (nothing listens: it fails).
_PROGRAM = """
import asyncio, os, sys
from webapp.grpc_tuning import tune_grpc_core
print(tune_grpc_core(), flush=True)
import grpc
async def connect():
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), 0.5)
        except asyncio.TimeoutError:
            pass
asyncio.run(connect())
"""


def run_webapp_start(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_an_operators_setting_wins_even_an_empty_one() -> None:
    assert tune_grpc_core({}) == EXPERIMENTS
    assert tune_grpc_core({EXPERIMENTS_VARIABLE: ""}) == ""


def test_the_pinned_grpcio_knows_every_experiment_the_webapp_turns_off() -> None:
    environ = {k: v for k, v in os.environ.items() if k != EXPERIMENTS_VARIABLE}
    tuned = run_webapp_start(environ)
    assert tuned.stdout.strip() == EXPERIMENTS
    assert "Unknown experiment" not in tuned.stderr, tuned.stderr
    # The check above can fail: grpc core names an experiment it does not know.
    unknown = run_webapp_start({**environ, EXPERIMENTS_VARIABLE: "-no_such_experiment"})
    assert "Unknown experiment: no_such_experiment" in unknown.stderr, unknown.stderr
