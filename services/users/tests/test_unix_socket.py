"""USERS_LISTEN_ADDRESS=unix:///path: the service on a UNIX socket answers health, calls and every
kind of stream; a live socket is never taken over, a stale one is replaced; the health-only
listener can be a UNIX socket too."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plumbing.settings import ConfigError
from users.v1 import users_pb2, users_pb2_grpc
from users_service.config import Settings, check_transport

from .conftest import ServerFactory


def test_settings_take_unix_addresses() -> None:
    settings = Settings.from_env(
        {
            "USERS_LISTEN_ADDRESS": "unix:///run/users/users.sock",
            "USERS_HEALTH_LISTEN_ADDRESS": "unix:health.sock",
        }
    )
    assert settings.listen_address == "unix:///run/users/users.sock"
    assert settings.health_listen_address == "unix:health.sock"
    check_transport(settings)  # a UNIX socket is local: plaintext needs no opt-in


@pytest.mark.parametrize("raw", ["unix://relative.sock", "unix:", "unix://", "sock"])
def test_settings_refuse_a_malformed_unix_address(raw: str) -> None:
    with pytest.raises(ConfigError, match="USERS_LISTEN_ADDRESS"):
        Settings.from_env({"USERS_LISTEN_ADDRESS": raw})


@pytest.fixture
async def unix_channel(
    start_server: ServerFactory, tmp_path: Path, admin_token: str
) -> AsyncIterator[tuple[Any, Path]]:
    path = tmp_path / "users.sock"
    await start_server(listen_address=f"unix://{path}")
    # grpc's local credentials for a UNIX socket carry the token (testkit's are for TCP).
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.UDS),
        grpc.access_token_call_credentials(admin_token),
    )
    async with grpc.aio.secure_channel(f"unix://{path}", credentials) as channel:
        yield channel, path


async def test_a_unix_socket_server_answers_health_calls_and_streams(
    unix_channel: tuple[Any, Path],
) -> None:
    channel, path = unix_channel
    assert stat.S_ISSOCK(path.stat().st_mode)
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="users.v1.UserService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    stub = users_pb2_grpc.UserServiceStub(channel)
    ada = await stub.CreateUser(users_pb2.CreateUserRequest(username="ada"))
    assert (await stub.GetUser(users_pb2.GetUserRequest(id=ada.id))).username == "ada"

    async def rows() -> AsyncIterator[users_pb2.CreateUserRequest]:
        for name in ("bob", "cyd"):
            yield users_pb2.CreateUserRequest(username=name)

    summary = await stub.ImportUsers(rows())  # client stream
    assert summary.created_count == 2
    streamed = [u.username async for u in stub.GetUsers(users_pb2.GetUsersRequest())]
    assert streamed == ["ada", "bob", "cyd"]  # server stream
    lookups = stub.LookupUsers(iter([users_pb2.LookupUsersRequest(username="cyd")]))
    assert [a.user.username async for a in lookups] == ["cyd"]  # both ways

    watch = stub.WatchUsers(users_pb2.WatchUsersRequest())
    await watch.initial_metadata()  # subscribed
    await stub.CreateUser(users_pb2.CreateUserRequest(username="dee"))
    event = await watch.read()
    assert event.user.username == "dee"
    watch.cancel()


async def test_a_live_socket_is_not_taken_over(
    unix_channel: tuple[Any, Path], start_server: ServerFactory
) -> None:
    _, path = unix_channel
    with pytest.raises(OSError, match="another server is listening"):
        await start_server(listen_address=f"unix://{path}")
    # The first server still has its socket.
    channel, _ = unix_channel
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_regular_file_at_the_path_is_left_alone(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(OSError, match="is not a socket"):
        await start_server(listen_address=f"unix://{path}")
    assert path.read_text() == "keep me"


def test_the_process_serves_a_unix_socket_and_its_health_listener_too(
    spawn_server: Callable[..., Any], tmp_path: Path, admin_token: str
) -> None:
    api, probe = tmp_path / "api.sock", tmp_path / "health.sock"
    # A stale socket from an earlier run: nothing listens there any more.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(api))
    proc = spawn_server(
        USERS_LISTEN_ADDRESS=f"unix://{api}", USERS_HEALTH_LISTEN_ADDRESS=f"unix://{probe}"
    )
    for address in (api, probe):
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "users-healthcheck"),
                "--address",
                f"unix://{address}",
                "--timeout",
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    with grpc.insecure_channel(f"unix://{api}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        stub.CreateUser(
            users_pb2.CreateUserRequest(username="proc"),
            timeout=5,
            metadata=[("authorization", f"Bearer {admin_token}")],
        )
    line = proc.wait_for_log(r'"message": "rpc /users.v1.UserService/CreateUser OK"')
    assert '"peer": "unix:' in line
