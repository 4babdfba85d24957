"""Connecting: defaults (make up's certs/, make run-users' plaintext), a dead target's message in
the timeout, tokens sent as `authorization: Bearer`, and the exit codes of refused calls."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from plumbing.tls import TlsFiles
from testkit.ports import free_port
from userstack_cli.connection import Transport, resolve
from userstack_cli.credentials import store_token
from userstack_cli.errors import ExitCode

from .conftest import ADMIN, ROOT, Cli, UsersService

Names = Callable[[str], str]


def test_a_dead_target_says_so_within_the_timeout(isolated_env: dict[str, str | None]) -> None:
    target = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = Cli(target, isolated_env)("--connect-timeout", "1", "get", "ada")
    elapsed = time.monotonic() - started
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert result.stderr.startswith(f"error: cannot reach {target} within 1 s over plaintext")
    assert elapsed < 2.5


def test_defaults_resolve_like_the_docs_say(tmp_path: Path) -> None:
    certs = tmp_path / "repo" / "certs"
    certs.mkdir(parents=True)
    for name in ("ca.pem", "client.pem", "client.key"):
        (certs / name).write_text("")
    below = tmp_path / "repo" / "services" / "users"
    below.mkdir(parents=True)
    found = TlsFiles(certs / "client.pem", certs / "client.key", certs / "ca.pem")

    def resolved(target: str | None, **kwargs: Any) -> tuple[str, Transport, TlsFiles | None]:
        connection = resolve(target, env={}, cwd=kwargs.pop("cwd", below), **kwargs)
        return connection.target, connection.transport, connection.tls

    assert resolved(None) == ("localhost:50051", Transport.EITHER, found)
    assert resolved("users.example.com:443") == ("users.example.com:443", Transport.TLS, found)
    assert resolved("unix:///run/users.sock")[1] is Transport.PLAINTEXT
    assert resolved(None, cwd=tmp_path) == ("localhost:50051", Transport.PLAINTEXT, None)
    assert resolved("users.example.com:443", cwd=tmp_path)[1:] == (Transport.TLS, TlsFiles())
    assert resolved("[::1]:50051", plaintext=True)[1] is Transport.PLAINTEXT
    given = TlsFiles(ca_file=tmp_path / "ca.pem")
    assert resolved("unix:///s.sock", files=given)[1:] == (Transport.TLS, given)
    env_target = resolve(None, env={"USERSTACK_TARGET": "dns:///users:50051"}, cwd=tmp_path)
    assert env_target.target == "dns:///users:50051"
    in_the_image = {
        "USERS_TLS_CA_FILE": "/certs/ca.pem",
        "USERS_TLS_CERT_FILE": "/certs/users.pem",
        "USERS_TLS_KEY_FILE": "/certs/users.key",
    }
    inside = resolve(None, env=in_the_image, cwd=tmp_path)
    assert (inside.transport, inside.tls) == (
        Transport.EITHER,
        TlsFiles(Path("/certs/users.pem"), Path("/certs/users.key"), Path("/certs/ca.pem")),
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The certs/ folder `make up` writes (scripts/certs.py), in a folder of its own."""
    folder = tmp_path_factory.mktemp("checkout") / "certs"
    subprocess.run(
        [sys.executable, "-m", "scripts.certs", "--dir", str(folder)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


def test_make_ups_certs_are_found_without_flags(
    certs: Path,
    spawn_users: Callable[..., UsersService],
    isolated_env: dict[str, str | None],
    uname: Names,
) -> None:
    """mTLS as `make up` serves it, and plaintext as `make run-users` does, with no flags."""
    mtls = spawn_users(
        f"localhost:{free_port()}",
        USERS_TLS_CERT_FILE=str(certs / "users.pem"),
        USERS_TLS_KEY_FILE=str(certs / "users.key"),
        USERS_TLS_CA_FILE=str(certs / "ca.pem"),
        USERS_TLS_CLIENT_AUTH="require",
    )
    plaintext = spawn_users()
    env = {**isolated_env, "USERSTACK_CERTS_DIR": None}
    cwd = Path.cwd()
    os.chdir(certs.parent)
    try:
        for service in (mtls, plaintext):
            created = Cli(service.address, env).signed_in().json("create", uname("tls"))
            assert created["id"] > 0
    finally:
        os.chdir(cwd)
    assert '"peer_identity": "developer"' in mtls.process.log()


class _Recorder(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A server that records each call's metadata and ends it with a chosen status."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.metadata: list[dict[str, str]] = []

    def service(self, details: Any) -> Any:
        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.metadata.append(dict(context.invocation_metadata()))
            context.abort(self.code, "refused by the test server")
            raise AssertionError("abort returned")

        return grpc.unary_unary_rpc_method_handler(answer)


@pytest.fixture
def recorder() -> Iterator[tuple[_Recorder, str]]:
    handler = _Recorder(grpc.StatusCode.UNAUTHENTICATED)
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield handler, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, ExitCode.UNAUTHENTICATED),
        (grpc.StatusCode.PERMISSION_DENIED, ExitCode.PERMISSION_DENIED),
        (grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, ExitCode.FAILURE),
    ],
)
def test_refused_calls_exit_with_their_code(
    recorder: tuple[_Recorder, str],
    isolated_env: dict[str, str | None],
    code: grpc.StatusCode,
    exit_code: ExitCode,
) -> None:
    handler, target = recorder
    handler.code = code
    result = Cli(target, isolated_env)("get", "ada")
    assert result.exit_code == exit_code
    assert result.stderr.startswith(f"error: {code.name}: refused by the test server")


def test_the_token_goes_as_bearer_metadata_with_a_request_id(
    recorder: tuple[_Recorder, str], isolated_env: dict[str, str | None]
) -> None:
    handler, target = recorder
    result = Cli(target, {**isolated_env, "USERSTACK_TOKEN": "t0ken"})("get", "ada")
    assert result.exit_code == ExitCode.UNAUTHENTICATED
    assert "userstack login" in result.stderr
    sent = handler.metadata[-1]
    assert sent["authorization"] == "Bearer t0ken"
    assert len(sent["x-request-id"]) == 32
    assert sent["user-agent"].startswith("userstack-cli/")
    # The token `login` stored for this target, when none is given.
    config = Path(str(isolated_env["USERSTACK_CONFIG_DIR"]))
    store_token(target, {"access_token": "st0red"}, {"USERSTACK_CONFIG_DIR": str(config)})
    Cli(target, isolated_env)("get", "ada")
    assert handler.metadata[-1]["authorization"] == "Bearer st0red"
    assert stat.S_IMODE((config / "credentials.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700


def test_a_token_never_goes_in_plaintext_to_another_machine(
    isolated_env: dict[str, str | None],
) -> None:
    env = {**isolated_env, "USERSTACK_TOKEN": "secret"}
    result = Cli("users.example.com:50051", env)("--plaintext", "get", "ada")
    assert result.exit_code == ExitCode.INVALID
    assert "refusing to send a token in plaintext" in result.stderr


def test_a_unix_socket_target(
    spawn_users: Callable[..., UsersService],
    isolated_env: dict[str, str | None],
    tmp_path: Path,
    uname: Names,
) -> None:
    service = spawn_users(f"unix://{tmp_path / 'users.sock'}")
    cli = Cli(service.address, isolated_env).signed_in()
    name = uname("sock")
    assert cli.json("create", name)["username"] == name
    exported = cli("export")  # a server stream
    assert exported.exit_code == 0
    exported_names = [json.loads(line)["username"] for line in exported.stdout.splitlines()]
    assert [n for n in exported_names if n != ADMIN[0]] == [name]
    assert cli.json("health")["status"] == "SERVING"
