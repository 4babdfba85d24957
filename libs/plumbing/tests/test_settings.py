"""plumbing.settings: each parser's accepted values, and the error that names the variable."""

from __future__ import annotations

import pytest
from plumbing import settings
from plumbing.settings import ConfigError, read


def test_unset_or_blank_is_the_default_and_a_value_is_stripped() -> None:
    assert read({}, "PORT", 8000, settings.port) == 8000
    assert read({"PORT": "  "}, "PORT", 8000, settings.port) == 8000
    assert read({"PORT": " 8080 "}, "PORT", 8000, settings.port) == 8080


def test_a_refused_value_names_the_variable_and_what_was_expected() -> None:
    with pytest.raises(ConfigError, match=r"^PORT='70000' is not valid: expected a port, 0-65535$"):
        read({"PORT": "70000"}, "PORT", 8000, settings.port)


def test_a_secret_is_shown_as_the_redactor_says() -> None:
    with pytest.raises(ConfigError, match=r"^URL='\*\*\*' is not valid") as refused:
        read({"URL": "postgres://u:pw@h"}, "URL", 0, settings.port, shown=lambda _: "***")
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("raw", ["[::]:50051", "127.0.0.1:0", "users:65535"])
def test_host_port_accepts(raw: str) -> None:
    assert settings.host_port(raw) == raw


@pytest.mark.parametrize("raw", ["50051", ":50051", "users:", "users:65536", "users:x"])
def test_host_port_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        settings.host_port(raw)


def test_seconds_between_includes_both_ends() -> None:
    parse = settings.seconds_between(0, 60)
    assert (parse("0"), parse("60"), parse("2.5")) == (0.0, 60.0, 2.5)
    for raw, expected in (("60.1", "between 0 and 60"), ("soon", "a number of seconds")):
        with pytest.raises(ValueError, match=expected):
            parse(raw)


def test_positive_seconds_refuses_zero() -> None:
    assert settings.positive_seconds("0.1") == 0.1
    with pytest.raises(ValueError, match="positive"):
        settings.positive_seconds("0")


def test_count_between_names_its_unit() -> None:
    parse = settings.count_between(1, 8, "connections")
    assert parse("8") == 8
    with pytest.raises(ValueError, match="number of connections between 1 and 8"):
        parse("9")


def test_log_level_and_boolean_ignore_case() -> None:
    assert settings.log_level("debug") == "DEBUG"
    with pytest.raises(ValueError, match="one of DEBUG, INFO"):
        settings.log_level("verbose")
    assert [settings.boolean(raw) for raw in ("TRUE", "1", "yes", "False", "0", "no")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="true or false"):
        settings.boolean("on")


@pytest.mark.parametrize("raw", ["[::]:50051", "unix:///run/users.sock", "unix:users.sock"])
def test_grpc_listen_address_accepts_host_port_and_unix_sockets(raw: str) -> None:
    assert settings.grpc_listen_address(raw) == raw


@pytest.mark.parametrize("raw", ["unix://relative.sock", "unix:", "unix://", "50051", "users:x"])
def test_grpc_listen_address_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match=r"expected (host:port|unix:)"):
        settings.grpc_listen_address(raw)
