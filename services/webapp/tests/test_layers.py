"""The webapp's layers: HTTP routes -> the users gateway -> the gRPC stubs, and never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import webapp

SOURCE = Path(webapp.__file__).parent
GATEWAY = SOURCE / "gateway"
# What speaks gRPC, or is the users service's own vocabulary: the gateway's business alone.
GRPC_SIDE = ("grpc", "grpc_health", "grpc_status", "users", "google.protobuf", "google.rpc")
# What speaks HTTP: the gateway must not lean on it (it would make an import cycle, too).
HTTP_SIDE = (
    "fastapi",
    "starlette",
    "webapp.app",
    "webapp.errors",
    "webapp.middleware",
    "webapp.routes",
)


def imports(path: Path) -> set[str]:
    """The modules a source file imports, by their full names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


OUTSIDE_GATEWAY = sorted(p for p in SOURCE.rglob("*.py") if GATEWAY not in p.parents)
IN_GATEWAY = sorted(GATEWAY.rglob("*.py"))


@pytest.mark.parametrize("path", OUTSIDE_GATEWAY, ids=lambda p: str(p.relative_to(SOURCE)))
def test_only_the_gateway_imports_grpc_or_the_users_messages(path: Path) -> None:
    assert {name for name in imports(path) if within(name, GRPC_SIDE)} == set()


@pytest.mark.parametrize("path", IN_GATEWAY, ids=lambda p: str(p.relative_to(SOURCE)))
def test_the_gateway_imports_nothing_from_the_http_side(path: Path) -> None:
    assert {name for name in imports(path) if within(name, HTTP_SIDE)} == set()


def test_the_routes_are_all_under_one_package() -> None:
    routers = {
        p.relative_to(SOURCE).parts[0] for p in OUTSIDE_GATEWAY if "APIRouter(" in p.read_text()
    }
    assert routers == {"routes"}
