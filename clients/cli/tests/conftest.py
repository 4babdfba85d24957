"""Fixtures: real users services (subprocesses on free loopback ports) and the CLI run against them,
in this process (click's runner: exit codes and both output streams) or as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from testkit.ports import free_port
from testkit.processes import LoggedProcess, stopped_at_exit
from testkit.waiting import wait_for_serving
from userstack_cli.app import cli

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 20.0
# The first admin a users service with accounts makes at start (USERS_ADMIN_*); a service without
# AuthService ignores both variables.
ADMIN = ("cli-admin", "correct-horse-battery-staple")


class UsersService:
    """`python -m users_service` at `address` (host:port or unix:///path), its database in
    `directory`, with extra USERS_* settings."""

    def __init__(self, directory: Path, address: str | None = None, **env: str) -> None:
        self.address = address or f"127.0.0.1:{free_port()}"
        self.env = {
            "USERS_LISTEN_ADDRESS": self.address,
            "USERS_DATABASE_URL": f"sqlite:///{directory / f'users-{uuid.uuid4().hex[:8]}.db'}",
            "USERS_GRACE_PERIOD_SECONDS": "1",
            "USERS_ADMIN_USERNAME": ADMIN[0],
            "USERS_ADMIN_PASSWORD": ADMIN[1],
            **env,
        }
        self.process = LoggedProcess([sys.executable, "-m", "users_service"], self.env)
        probe = env.get("USERS_HEALTH_LISTEN_ADDRESS") or self.address
        if "USERS_TLS_CERT_FILE" in env and probe == self.address:
            self.process.wait_for_line('"message": "listening"', timeout=START_TIMEOUT)
        elif not wait_for_serving(probe, "", START_TIMEOUT):
            raise RuntimeError(f"users service never became SERVING:\n{self.process.log()}")

    def stop(self) -> int:
        return self.process.stop()


@pytest.fixture(scope="session")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersService]:
    """One users service the tests share (each uses usernames of its own)."""
    service = UsersService(tmp_path_factory.mktemp("users"))
    yield service
    service.stop()


@pytest.fixture
def spawn_users(tmp_path: Path) -> Iterator[Callable[..., UsersService]]:
    """Starts private users services, stopped at teardown: spawn_users(address=None, **env)."""

    def spawn(address: str | None = None, **env: str) -> UsersService:
        return UsersService(tmp_path, address, **env)

    with stopped_at_exit(spawn) as spawn_and_keep:
        yield spawn_and_keep


@pytest.fixture
def uname() -> Callable[[str], str]:
    """Usernames no other test uses."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Cli:
    """The CLI against one target, run in this process; `json` parses its stdout."""

    target: str
    env: dict[str, str | None]

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner(env=self.env)
        return runner.invoke(cli, ["--target", self.target, *args], input=input)

    def json(self, *args: str) -> Any:
        result = self("-o", "json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def signed_in(self) -> Cli:
        """This CLI after `userstack login` as the service's admin, its token in the env.

        A users service without AuthService answers UNIMPLEMENTED, and takes calls without a
        token: the CLI then goes on without one. Any other failure fails the test."""
        result = self("-o", "json", "login", ADMIN[0], "--password-stdin", input=f"{ADMIN[1]}\n")
        if result.exit_code == 1 and "UNIMPLEMENTED" in result.stderr:
            return self
        assert result.exit_code == 0, result.output
        stored = Path(json.loads(result.stdout)["stored_in"])
        token = json.loads(stored.read_text())["tokens"][self.target]["access_token"]
        return Cli(self.target, {**self.env, "USERSTACK_TOKEN": token})


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str | None]:
    """No USERSTACK_* settings from the machine; a config folder of the test's own."""
    return {
        "USERSTACK_TARGET": None,
        "USERSTACK_TOKEN": None,
        "USERSTACK_OUTPUT": None,
        "USERSTACK_CERTS_DIR": str(tmp_path / "no-certs"),
        "USERSTACK_CONFIG_DIR": str(tmp_path / "config"),
        "USERS_TLS_CA_FILE": None,
    }


@pytest.fixture(scope="session")
def users_token(users: UsersService, tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """The shared service's admin token (signed in once), or None where it has no accounts."""
    config = tmp_path_factory.mktemp("session-config")
    cli = Cli(users.address, {"USERSTACK_CONFIG_DIR": str(config), "USERSTACK_TOKEN": None})
    return cli.signed_in().env.get("USERSTACK_TOKEN")


@pytest.fixture
def run(users: UsersService, isolated_env: dict[str, str | None], users_token: str | None) -> Cli:
    """The CLI against the shared users service (as its admin where it has accounts)."""
    return Cli(users.address, {**isolated_env, "USERSTACK_TOKEN": users_token})


def userstack(*args: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    """The installed `userstack` console script as a process (its output as text pipes)."""
    script = Path(sys.executable).parent / "userstack"
    return subprocess.Popen(
        [str(script), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
