"""A Host the webapp does not serve is refused before any route runs (DNS rebinding)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from webapp.config import ConfigError, Settings
from webapp.hosts import HostCheck

PROBLEM = "application/problem+json"
KEY = "k" * 32


@pytest.mark.parametrize(
    "host", ["evil.example", "attacker.test:8000", "localhost.evil.example", "127.0.0.2", ""]
)
async def test_a_host_not_configured_is_refused_with_a_400_problem(webapp: Any, host: str) -> None:
    async with httpx.AsyncClient(base_url=webapp.url) as client:
        for path in ("/", "/api/v1/users/1", "/users/", "/.well-known/jwks.json", "/docs"):
            response = await client.get(path, headers={"host": host})
            assert response.status_code == 400, path
            assert response.headers["content-type"] == PROBLEM
            assert "WEBAPP_ALLOWED_HOSTS" in response.json()["detail"]
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1:1", "[::1]:8000"])
async def test_the_default_hosts_are_served_on_any_port(webapp: Any, host: str) -> None:
    async with httpx.AsyncClient(base_url=webapp.url) as client:
        response = await client.get("/healthz", headers={"host": host})
        assert response.status_code == 200
        response = await client.get("/static/app.css", headers={"host": host})
        assert response.status_code == 200


async def test_probes_answer_whatever_the_host(webapp: Any) -> None:
    async with httpx.AsyncClient(base_url=webapp.url) as client:
        for path in ("/healthz", "/readyz"):
            response = await client.get(path, headers={"host": "10.1.2.3:8000"})
            assert response.status_code == 200, path


async def test_configured_hosts_replace_the_defaults(spawn_webapp: Any, users: Any) -> None:
    app = spawn_webapp(users.address, WEBAPP_ALLOWED_HOSTS="users.example.com, *.corp.example")
    async with httpx.AsyncClient(base_url=app.url) as client:
        for host, status in [
            ("users.example.com", 200),
            ("a.b.corp.example:443", 200),
            ("corp.example", 400),
            ("localhost", 400),
        ]:
            response = await client.get("/static/app.css", headers={"host": host})
            assert response.status_code == status, host


def test_host_check_matches_names_not_substrings() -> None:
    check = HostCheck(["localhost", "[::1]", "*.example.com"])
    for allowed in (b"localhost:1", b"[::1]", b"[::1]:80"):
        assert check.allows(allowed)
    assert check.allows(b"a.example.com")
    assert not check.allows(b"example.com")
    assert not check.allows(b"notexample.com")
    assert not check.allows(b"localhostx")
    assert not check.allows(None)
    assert HostCheck(["*"]).allows(b"anything")


@pytest.mark.parametrize(
    "raw", ["http://localhost", "localhost:8000", "a,,b", "*", "*.", "ex ample.com", "user@host"]
)
def test_bad_allowed_hosts_stop_the_start_naming_the_variable(raw: str) -> None:
    env = {"WEBAPP_SECRET_KEY": KEY, "WEBAPP_ALLOWED_HOSTS": raw}
    if raw == "*":  # the explicit opt-out is a valid value
        assert Settings.from_env(env).allowed_hosts == ("*",)
        return
    with pytest.raises(ConfigError, match="WEBAPP_ALLOWED_HOSTS"):
        Settings.from_env(env)


@pytest.mark.parametrize("value", ["Bearer " + "x" * 5000, "Bearer caf\u00e9", "Bearer a\tb"])
async def test_an_authorization_header_that_cannot_be_passed_on_is_a_401(
    webapp: Any, value: str
) -> None:
    async with httpx.AsyncClient(base_url=webapp.url) as client:
        response = await client.get(
            "/api/v1/users/1", headers={b"authorization": value.encode("latin-1")}
        )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="userstack", error="invalid_token"'
