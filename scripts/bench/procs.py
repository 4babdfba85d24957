"""Server processes: start on a free loopback port, pinned to a core; watch CPU and memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testkit.ports import free_port
from testkit.processes import memory_kb, reset_peak_rss
from testkit.waiting import wait_for_port

STARTUP_SECONDS = 30.0
_TICKS = os.sysconf("SC_CLK_TCK")


def pinned(command: list[str], cores: str | None) -> list[str]:
    """The command under `taskset -c cores` (unchanged when cores is None)."""
    return command if cores is None else ["taskset", "-c", cores, *command]


@dataclass
class Server:
    """One server process under test, listening on 127.0.0.1:port.

    Example:
        >>> server = Server.start("aio", ["-m", "scripts.bench.peers.aio_echo"], {}, "0", logs)
        >>> server.stop()  # doctest: +SKIP
    """

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    _cpu_mark: float = field(default=0.0)
    _terminated: bool = field(default=False)

    @classmethod
    def start(
        cls, name: str, args: list[str], env: dict[str, str], cores: str | None, logs: Path
    ) -> Server:
        """Runs `python args... --port N` (or with env's port), waits until it accepts."""
        server = cls.spawn(name, args, env, cores, logs, port=free_port())
        server.wait_accepting()
        return server

    @classmethod
    def spawn(
        cls, name: str, args: list[str], env: dict[str, str], cores: str | None, logs: Path,
        *, port: int,
    ) -> Server:  # fmt: skip
        """Runs `python args...`, `{port}` in args and env replaced by `port`; returns at once."""
        env = {**os.environ, **{k: v.replace("{port}", str(port)) for k, v in env.items()}}
        command = [sys.executable, *(a.replace("{port}", str(port)) for a in args)]
        log = logs / f"{name}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                pinned(command, cores), env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        return cls(name, proc, port, log)

    def wait_accepting(self) -> None:
        """Returns once the server accepts connections; SystemExit with its log if it exits
        or does not within STARTUP_SECONDS."""
        if wait_for_port(self.port, STARTUP_SECONDS, alive=lambda: self.proc.poll() is None):
            return
        self.stop()
        raise SystemExit(f"{self.name} did not start; its log:\n{self.log.read_text()[-3000:]}")

    def accepting(self) -> bool:
        """Whether the server accepts connections now; SystemExit with its log if it exited."""
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited; its log:\n{self.log.read_text()[-3000:]}")
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def pin(self, cores: str) -> None:
        """Moves every thread of the running process to `cores` (threads it starts later
        inherit it from the thread that starts them)."""
        mask = {int(core) for core in cores.split(",")}
        moved: set[int] = set()
        while tids := {int(t) for t in os.listdir(f"/proc/{self.proc.pid}/task")} - moved:
            for tid in tids:
                with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                    os.sched_setaffinity(tid, mask)
            moved |= tids

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process, all its threads."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def reset_peak_rss(self) -> None:
        """Starts a new peak-RSS window (VmHWM back to the current RSS)."""
        reset_peak_rss(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """The peak resident memory since the last reset, in MiB."""
        return memory_kb(self.proc.pid, "VmHWM") / 1024

    def terminate(self) -> None:
        """Asks the server to stop (SIGTERM, once: a second may mean "now"), without waiting."""
        if self.proc.poll() is None and not self._terminated:
            self.proc.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit status."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)
