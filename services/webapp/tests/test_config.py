"""Settings: read once from WEBAPP_* variables; a bad or missing value stops the start loudly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from webapp.config import ConfigError, Settings

KEY = "k" * 32


def test_defaults_match_the_agreed_interface() -> None:
    settings = Settings.from_env({"WEBAPP_SECRET_KEY": KEY})
    assert settings.users_target == "localhost:50051"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.grpc_timeout_seconds == 5.0
    assert settings.log_level == "INFO"


def test_values_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "WEBAPP_SECRET_KEY": KEY,
            "WEBAPP_USERS_TARGET": "users:50051",
            "WEBAPP_PORT": "9000",
            "WEBAPP_GRPC_TIMEOUT_SECONDS": "0.5",
            "WEBAPP_LOG_LEVEL": "debug",
        }
    )
    assert (settings.users_target, settings.port) == ("users:50051", 9000)
    assert (settings.grpc_timeout_seconds, settings.log_level) == (0.5, "DEBUG")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "WEBAPP_SECRET_KEY"),
        ({"WEBAPP_SECRET_KEY": "too-short"}, "WEBAPP_SECRET_KEY"),
        ({"WEBAPP_SECRET_KEY": KEY, "WEBAPP_PORT": "http"}, "WEBAPP_PORT"),
        ({"WEBAPP_SECRET_KEY": KEY, "WEBAPP_PORT": "70000"}, "WEBAPP_PORT"),
        ({"WEBAPP_SECRET_KEY": KEY, "WEBAPP_GRPC_TIMEOUT_SECONDS": "0"}, "WEBAPP_GRPC_TIMEOUT"),
        ({"WEBAPP_SECRET_KEY": KEY, "WEBAPP_LOG_LEVEL": "LOUD"}, "WEBAPP_LOG_LEVEL"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_start_without_a_secret_key_fails_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBAPP_")}
    result = subprocess.run(
        [sys.executable, "-m", "webapp"],
        check=False,
        env=env,
        capture_output=True,
        timeout=30,
        text=True,
    )
    assert result.returncode == 1
    assert "WEBAPP_SECRET_KEY is required" in result.stderr
    assert "Traceback" not in result.stderr
