"""Every compose service's container logs are rotated (json-file with max-size and max-file), so
that a client making each call log a line cannot fill the host's disk."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.manifests import ROOT
from tests.deploy.test_postgres_tls import scale_file


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def logging_of(name: str) -> dict[str, Any]:
    """The service's logging, the scaled file's overriding compose.yaml's."""
    base = compose_file()["services"].get(name, {})
    override = scale_file()["services"].get(name, {})
    found: dict[str, Any] = override.get("logging") or base.get("logging") or {}
    return found


SERVICES = sorted(set(compose_file()["services"]) | set(scale_file()["services"]))


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_rotates_its_logs(name: str) -> None:
    logging = logging_of(name)
    assert logging.get("driver") == "json-file", f"{name}: no rotated logging"
    assert logging["options"]["max-size"]
    assert int(logging["options"]["max-file"]) >= 2
