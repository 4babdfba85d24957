"""Errors the app answers by itself (no users call): problem+json with the usual headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PROBLEM = "application/problem+json"


async def _fail() -> None:
    raise RuntimeError("a secret internal detail")


@pytest.fixture
async def app_client(in_process: Any) -> httpx.AsyncClient:
    """The real app (its users target unused) with one route that fails unexpectedly."""
    app, client = await in_process("127.0.0.1:9")
    app.add_api_route("/fail", _fail)
    served: httpx.AsyncClient = client
    return served


def assert_guarded(response: httpx.Response) -> None:
    assert len(response.headers["x-request-id"]) == 32
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_unhandled_error_is_a_500_problem_with_request_id_and_headers(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/fail")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "secret" not in response.text
    assert_guarded(response)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/page", 404), ("DELETE", "/healthz", 405), ("PUT", "/api/v1/users", 405)],
)
async def test_unknown_routes_and_methods_are_problems_with_headers(
    app_client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await app_client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert_guarded(response)


async def test_a_body_that_is_not_json_is_a_422_problem_naming_the_body(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.post(
        "/api/v1/users", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"] == [{"field": "body", "message": "JSON decode error"}]
    assert_guarded(response)


async def test_static_files_carry_the_security_headers(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/static/app.js")
    assert response.status_code == 200
    assert_guarded(response)
