"""`userstack login` against the AuthService contract (protos/users/v1/users.proto): SignIn's token
stored for the target in a file only its owner reads, and sent by the commands after it.

The server here is a stand-in that speaks the contract (SignIn, and a GetUser that checks the
bearer token), for as long as the users service does not implement AuthService itself."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from users.v1 import users_pb2
from userstack_cli.errors import ExitCode

from .conftest import Cli, UsersService

TOKEN = "eyJ.the-token.sig"


class _Accounts(grpc.GenericRpcHandler):  # type: ignore[misc]
    """SignIn for ada/correct-horse-battery; GetUser only with her bearer token."""

    def service(self, details: Any) -> Any:
        if details.method == "/users.v1.AuthService/SignIn":
            return grpc.unary_unary_rpc_method_handler(
                self._sign_in,
                users_pb2.SignInRequest.FromString,
                users_pb2.SignInResponse.SerializeToString,
            )
        if details.method == "/users.v1.UserService/GetUser":
            return grpc.unary_unary_rpc_method_handler(
                self._get_user,
                users_pb2.GetUserRequest.FromString,
                users_pb2.User.SerializeToString,
            )
        return None

    def _sign_in(self, request: Any, context: grpc.ServicerContext) -> Any:
        if (request.username, request.password) != ("ada", "correct-horse-battery"):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")
        return users_pb2.SignInResponse(
            access_token=TOKEN,
            token_type="Bearer",
            expire_time=timestamp_pb2.Timestamp(seconds=2_000_000_000),
            user=users_pb2.User(id=1, username="ada"),
        )

    def _get_user(self, request: Any, context: grpc.ServicerContext) -> Any:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")
        return users_pb2.User(id=1, username="ada")


@pytest.fixture
def accounts() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[_Accounts()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_login_stores_the_token_for_later_commands(
    accounts: str, isolated_env: dict[str, str | None]
) -> None:
    cli = Cli(accounts, isolated_env)
    assert cli("get", "ada").exit_code == ExitCode.UNAUTHENTICATED
    result = cli("-o", "json", "login", "ada", "--password-stdin", input="correct-horse-battery\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["signed_in"] == "ada"
    stored = Path(str(isolated_env["USERSTACK_CONFIG_DIR"])) / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["tokens"][accounts]["access_token"] == TOKEN
    assert cli.json("get", "ada")["username"] == "ada"
    # Stored for that target only: another target never sees it.
    assert Cli("127.0.0.1:1", isolated_env)("--connect-timeout", "0.2", "get", "x").exit_code == 7
    logout = cli("logout")
    assert logout.exit_code == 0
    assert cli("get", "ada").exit_code == ExitCode.UNAUTHENTICATED


def test_login_with_a_wrong_password_stores_nothing(
    accounts: str, isolated_env: dict[str, str | None]
) -> None:
    result = Cli(accounts, isolated_env)("login", "ada", "--password-stdin", input="nope\n")
    assert result.exit_code == ExitCode.UNAUTHENTICATED
    assert "wrong username or password" in result.stderr
    assert not (Path(str(isolated_env["USERSTACK_CONFIG_DIR"])) / "credentials.json").exists()


def test_login_prompts_for_the_password_without_echo(
    accounts: str, isolated_env: dict[str, str | None]
) -> None:
    result = Cli(accounts, isolated_env)("login", "ada", input="correct-horse-battery\n")
    assert result.exit_code == 0, result.output
    assert "correct-horse-battery" not in result.output


def test_login_to_a_service_without_accounts_says_so(
    users: UsersService, isolated_env: dict[str, str | None]
) -> None:
    result = Cli(users.address, isolated_env)("login", "ada", "--password-stdin", input="pw\n")
    assert result.exit_code in (ExitCode.FAILURE, ExitCode.UNAUTHENTICATED)
    assert result.stderr.startswith("error: ")
