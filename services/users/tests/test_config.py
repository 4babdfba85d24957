"""Settings from the environment, and the process refusing a bad one with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from users.v1 import users_pb2
from users_service import pagination, validation
from users_service.config import ConfigError, Settings
from users_service.database_url import redact, sqlite_path
from users_service.store.factory import build_store
from users_service.store.postgres import PostgresUserStore
from users_service.store.sqlite import SqliteUserStore


def run_service(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs `python -m users_service` in `cwd` until it exits (these tests expect a refusal)."""
    return subprocess.run(
        [sys.executable, "-m", "users_service"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
    )


def test_defaults_match_the_agreed_interface() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(
        listen_address="[::]:50051",
        database_url="sqlite:///data/users.db",
        database_pool_size=8,
        grace_period_seconds=10.0,
        log_level="INFO",
        max_message_bytes=4194304,
        store_probe_interval_seconds=2.0,
    )


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "USERS_LISTEN_ADDRESS": "127.0.0.1:6000",
            "USERS_DATABASE_URL": "sqlite:////var/lib/users/users.db",
            "USERS_DATABASE_POOL_SIZE": "20",
            "USERS_GRACE_PERIOD_SECONDS": "2.5",
            "USERS_LOG_LEVEL": "debug",
            "USERS_MAX_MESSAGE_BYTES": "65536",
            "USERS_STORE_PROBE_INTERVAL_SECONDS": "0.5",
        }
    )
    assert settings.listen_address == "127.0.0.1:6000"
    assert settings.database_url == "sqlite:////var/lib/users/users.db"
    assert settings.database_pool_size == 20
    assert settings.grace_period_seconds == 2.5
    assert settings.log_level == "DEBUG"
    assert settings.max_message_bytes == 65536
    assert settings.store_probe_interval_seconds == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USERS_LISTEN_ADDRESS", "no-port"),
        ("USERS_LISTEN_ADDRESS", "host:99999"),
        ("USERS_DATABASE_POOL_SIZE", "0"),
        ("USERS_DATABASE_POOL_SIZE", "many"),
        ("USERS_GRACE_PERIOD_SECONDS", "soon"),
        ("USERS_GRACE_PERIOD_SECONDS", "-1"),
        ("USERS_LOG_LEVEL", "LOUD"),
        ("USERS_MAX_MESSAGE_BYTES", "12"),
        ("USERS_MAX_MESSAGE_BYTES", "4MB"),
        ("USERS_STORE_PROBE_INTERVAL_SECONDS", "0"),
    ],
)
def test_a_bad_value_is_a_clear_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.slow
def test_the_process_refuses_to_start_on_a_bad_value(tmp_path: Path) -> None:
    result = run_service({"USERS_GRACE_PERIOD_SECONDS": "forever"}, tmp_path)
    assert result.returncode != 0
    assert "USERS_GRACE_PERIOD_SECONDS='forever' is not valid" in result.stderr


def test_page_tokens_round_trip_and_are_bound_to_their_filter() -> None:
    token = pagination.encode_token(41, "ann")
    assert pagination.decode_token(token, "ann") == 41
    assert pagination.decode_token("", "ann") == 0
    with pytest.raises(validation.InvalidArgument):
        pagination.decode_token(token, "bob")


def test_usernames_are_lowercased_before_validation() -> None:
    user = validation.new_user(users_pb2.CreateUserRequest(username="Mixed.Case-1"))
    assert user.username == "mixed.case-1"


@pytest.mark.slow
def test_the_process_exits_1_with_a_clear_message_when_the_database_cannot_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    env = {
        "USERS_LISTEN_ADDRESS": "127.0.0.1:0",
        "USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'a-file' / 'users.db'}",
    }
    result = run_service(env, tmp_path)
    assert result.returncode == 1
    assert "cannot start: cannot open database" in result.stderr


async def test_the_database_url_scheme_picks_the_store() -> None:
    assert sqlite_path("sqlite:///data/users.db") == Path("data/users.db")
    assert sqlite_path("sqlite:////var/lib/users.db") == Path("/var/lib/users.db")
    assert isinstance(build_store("sqlite:///data/users.db"), SqliteUserStore)
    for url in ("postgresql://app:pw@db:5432/users", "postgres://db/users"):
        assert Settings.from_env({"USERS_DATABASE_URL": url}).database_url == url
        assert isinstance(build_store(url), PostgresUserStore)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app:hunter2@db/users",
        "sqlite://relative.db",
        "sqlite:///",
        "/data/users.db",
        "postgresql://app:hunter2@db/users?nosuchoption=1",
        "postgresql://app:hunter2@[db/users",
    ],
)
def test_a_bad_database_url_is_a_clear_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="USERS_DATABASE_URL") as caught:
        Settings.from_env({"USERS_DATABASE_URL": url})
    assert "hunter2" not in str(caught.value)


def test_the_old_database_path_variable_is_refused_with_a_pointer_to_the_new() -> None:
    with pytest.raises(ConfigError, match="set USERS_DATABASE_URL instead"):
        Settings.from_env({"USERS_DATABASE_PATH": "/data/users.db"})


def test_the_password_is_redacted_for_logs_and_left_out_of_the_settings_repr() -> None:
    url = "postgresql://app:hunter2@db:5432/users?sslmode=require&password=hunter3"
    assert redact(url) == "postgresql://app:***@db:5432/users?sslmode=require&password=***"
    assert redact("postgresql://db/users") == "postgresql://db/users"
    assert "hunter2" not in repr(Settings.from_env({"USERS_DATABASE_URL": url}))


@pytest.mark.slow
def test_the_process_refuses_an_unknown_database_scheme(tmp_path: Path) -> None:
    result = run_service({"USERS_DATABASE_URL": "mysql://app:hunter2@db/users"}, tmp_path)
    assert result.returncode != 0
    assert "USERS_DATABASE_URL='mysql://app:***@db/users' is not valid" in result.stderr
    assert "hunter2" not in result.stderr
