"""The settings parsers' edges: aliases, non-ASCII digits, infinities."""

from __future__ import annotations

import pytest
from plumbing.settings import ConfigError, host_port, log_level, positive_seconds, read


@pytest.mark.parametrize(
    ("raw", "level"), [("warn", "WARNING"), ("FATAL", "CRITICAL"), ("Info", "INFO")]
)
def test_log_levels_take_the_stdlib_aliases(raw: str, level: str) -> None:
    assert log_level(raw) == level


def test_an_unknown_log_level_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"LEVEL='verbose' is not valid: expected one of DEBUG"):
        read({"LEVEL": "verbose"}, "LEVEL", "INFO", log_level)


@pytest.mark.parametrize("raw", ["localhost:²", "localhost:123456", "localhost:-1", ":80", "x"])
def test_a_bad_host_port_says_what_was_expected(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^expected host:port"):
        host_port(raw)


@pytest.mark.parametrize("raw", ["[::]:50051", "127.0.0.1:0", "users:65535"])
def test_a_host_port_is_kept_as_given(raw: str) -> None:
    assert host_port(raw) == raw


@pytest.mark.parametrize("raw", ["inf", "nan", "0", "-1"])
def test_positive_seconds_are_finite_and_above_zero(raw: str) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        positive_seconds(raw)
