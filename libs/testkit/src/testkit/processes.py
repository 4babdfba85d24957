"""Server subprocesses for tests: started with their stderr read line by line by a thread, found
in that log, stopped; what the kernel says of them (thread scheduling, memory)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from testkit.waiting import wait_until


class LoggedProcess:
    """A child process whose stderr lines a thread collects as they come (`lines`).

    `ready` is set by the first line for which `ready_when(line)` is true (kept as
    `ready_line`), or when the process closes its stderr, so that nobody waits forever.

    Example:
        >>> server = LoggedProcess(
        ...     [sys.executable, "-m", "users_service"], {"USERS_LISTEN_ADDRESS": "127.0.0.1:0"},
        ...     ready_when=lambda line: '"message": "listening"' in line,
        ... )  # doctest: +SKIP
        >>> server.ready.wait(20) and server.ready_line is not None
        True
        >>> line = server.wait_for_line('"request_id": "r-1"', "GetUser")
        >>> server.stop(signal.SIGTERM)
        0
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        ready_when: Callable[[str], object] | None = None,
    ) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.ready_line: str | None = None
        self._ready_when = ready_when
        self.proc = subprocess.Popen(  # noqa: S603 - commands the tests themselves wrote
            args, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stderr = self.proc.stderr
        if stderr is None:  # never: Popen was given stderr=PIPE
            return
        for line in stderr:
            self.lines.append(line)
            if self.ready_line is None and self._ready_when and self._ready_when(line):
                self.ready_line = line
                self.ready.set()
        self.ready.set()  # the process ended: nobody waits forever

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        """The process has not exited yet."""
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the process has written to stderr so far."""
        return "".join(self.lines)

    def wait_for_line(self, *parts: str, timeout: float = 5.0) -> str:
        """The first line containing every part, waiting for the reader thread (bounded)."""
        return self._first(lambda line: all(p in line for p in parts), timeout, f"with {parts}")

    def wait_for_match(self, pattern: str, timeout: float = 10.0) -> str:
        """The first line `re.search(pattern)` matches, waiting for the reader thread (bounded)."""
        return self._first(lambda line: re.search(pattern, line), timeout, f"matching {pattern!r}")

    def _first(self, matches: Callable[[str], object], timeout: float, what: str) -> str:
        return wait_until(
            lambda: next((line for line in list(self.lines) if matches(line)), None),
            timeout,
            failure=lambda: f"no line {what} in:\n{self.log()}",
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Sends `sig` (if still running), kills after `timeout` s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


class Stoppable(Protocol):
    def stop(self) -> object: ...


S = TypeVar("S", bound=Stoppable)
P = ParamSpec("P")


@contextmanager
def stopped_at_exit(start: Callable[P, S]) -> Iterator[Callable[P, S]]:
    """`start`, wrapped so that all it started is stopped on leaving the block, in start order;
    every one is stopped even if stopping an earlier one raises (the first error is raised after).

    Example (a fixture that starts servers and always stops them):
        >>> @pytest.fixture
        ... def spawn_users(tmp_path):
        ...     with stopped_at_exit(lambda: UsersService(tmp_path).start()) as spawn:
        ...         yield spawn
    """
    started: list[S] = []

    def start_and_keep(*args: P.args, **kwargs: P.kwargs) -> S:
        item = start(*args, **kwargs)
        started.append(item)
        return item

    try:
        yield start_and_keep
    finally:
        errors: list[BaseException] = []
        for item in started:
            try:
                item.stop()
            except BaseException as error:  # noqa: BLE001 - stop the rest, then raise it
                errors.append(error)
        if errors:
            raise errors[0]


def thread_policies(pid: int) -> set[int]:
    """The CPU scheduling policy of every thread of the process (os.SCHED_*)."""
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def memory_kb(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status in kB: VmRSS (now), VmHWM (peak since the last reset)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise LookupError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


def reset_peak_rss(pid: int) -> None:
    """Resets the process's VmHWM (peak RSS) to its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
