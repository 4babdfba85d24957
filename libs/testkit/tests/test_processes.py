"""testkit.processes.stopped_at_exit: everything started is stopped, even when a stop fails."""

from __future__ import annotations

import pytest
from testkit.processes import stopped_at_exit


class _Server:
    def __init__(self, name: str, stopped: list[str], fails: bool = False) -> None:
        self.name, self._stopped, self._fails = name, stopped, fails

    def stop(self) -> None:
        self._stopped.append(self.name)
        if self._fails:
            raise RuntimeError(f"{self.name} would not stop")


def test_a_stop_that_raises_does_not_leave_the_later_ones_running() -> None:
    stopped: list[str] = []

    def start_two() -> None:
        with stopped_at_exit(lambda name, fails=False: _Server(name, stopped, fails)) as start:
            start("first", fails=True)
            start("second")

    with pytest.raises(RuntimeError, match="first would not stop"):
        start_two()
    assert stopped == ["first", "second"]
