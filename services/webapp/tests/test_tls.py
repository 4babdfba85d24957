"""The webapp over TLS: its mTLS channel to a users service that requires it (a renewed client
certificate picked up without a restart), HTTPS with Secure __Host- cookies and HSTS."""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from testkit.certs import CertificateAuthority
from testkit.ports import free_port
from testkit.processes import LoggedProcess

from .conftest import ADMIN as ADMIN_NAME
from .conftest import (
    ADMIN_ENV,
    ADMIN_PASSWORD,
    ADMIN_TOKEN,
    AUTH_ENV,
    START_TIMEOUT,
    Webapp,
    unique,
)
from .test_ui import csrf_token

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
HTML = {"Accept": "text/html", **ADMIN}


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    root: Path

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertificateAuthority.create("webapp test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    ca.issue("users", dns_names=["localhost"], ip_addresses=["127.0.0.1"]).write(tmp_path / "users")
    ca.issue("webapp", dns_names=["webapp-1"]).write(tmp_path / "client")
    return Pki(ca, tmp_path)


@pytest.fixture
def mtls_users(pki: Pki) -> Iterator[tuple[LoggedProcess, str]]:
    """A users service that requires a client certificate from the CA."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        "USERS_LISTEN_ADDRESS": address,
        "USERS_DATABASE_URL": f"sqlite:///{pki.root / 'users.db'}",
        "USERS_TLS_CERT_FILE": str(pki.root / "users.pem"),
        "USERS_TLS_KEY_FILE": str(pki.root / "users.key"),
        "USERS_TLS_CA_FILE": str(pki.ca_file),
        "USERS_TLS_CLIENT_AUTH": "require",
        **AUTH_ENV,
        **ADMIN_ENV,
    }
    process = LoggedProcess(
        [sys.executable, "-m", "users_service"], env, ready_when=lambda line: '"listening"' in line
    )
    assert process.ready.wait(START_TIMEOUT), process.log()
    yield process, address
    process.stop()


def _localhost(address: str) -> str:
    return f"localhost:{address.rpartition(':')[2]}"


def _page(url: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    """The index page, once the webapp listens (uvicorn reports startup before it binds) and its
    channel is up (its first calls may find it connecting)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            page = httpx.get(url, verify=verify, timeout=10, headers=HTML)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
        else:
            if page.status_code != 503 or time.monotonic() > deadline:
                return page
        time.sleep(0.2)


def _client_env(pki: Pki) -> dict[str, str]:
    return {
        "WEBAPP_USERS_TLS_CA_FILE": str(pki.ca_file),
        "WEBAPP_USERS_TLS_CERT_FILE": str(pki.root / "client.pem"),
        "WEBAPP_USERS_TLS_KEY_FILE": str(pki.root / "client.key"),
    }


def _identity_of_last_create(users: LoggedProcess) -> str:
    line = users.wait_for_line("CreateUser OK", timeout=10)
    for candidate in users.lines:
        if "CreateUser OK" in candidate:
            line = candidate
    identity: str = json.loads(line)["peer_identity"]
    return identity


def _create(base_url: str, username: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    deadline = time.monotonic() + 15
    with httpx.Client(base_url=base_url, verify=verify, timeout=10, headers=ADMIN) as http:
        while True:
            try:
                return http.post("/api/v1/users", json={"username": username})
            except httpx.ConnectError:  # uvicorn reports startup just before it binds
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def test_webapp_reaches_an_mtls_users_service_and_picks_up_a_renewed_certificate(
    pki: Pki, mtls_users: tuple[LoggedProcess, str], spawn_webapp: Callable[..., Webapp]
) -> None:
    users, address = mtls_users
    webapp = spawn_webapp(f"localhost:{address.rpartition(':')[2]}", **_client_env(pki))
    created = _create(webapp.url, unique("tls"))
    assert created.status_code == 201, created.text
    assert _identity_of_last_create(users) == "webapp-1"
    read = httpx.get(f"{webapp.url}/api/v1/users/{created.json()['id']}", headers=ADMIN)
    assert read.status_code == 200
    # The renewal, as cert-manager writes it: same paths, new contents.
    pki.ca.issue("webapp", dns_names=["webapp-2"]).write(pki.root / "client")
    deadline = time.monotonic() + 20  # the channel checks its files every 5 s
    while time.monotonic() < deadline:
        assert _create(webapp.url, unique("tls")).status_code == 201
        if _identity_of_last_create(users) == "webapp-2":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the renewed client certificate was never presented:\n{users.log()}")
    assert "new channel" in webapp.process.log()


def test_webapp_without_a_client_certificate_is_refused_by_mtls(
    pki: Pki, mtls_users: tuple[LoggedProcess, str], spawn_webapp: Callable[..., Webapp]
) -> None:
    _, address = mtls_users
    webapp = spawn_webapp(
        f"localhost:{address.rpartition(':')[2]}", WEBAPP_USERS_TLS_CA_FILE=str(pki.ca_file)
    )
    assert _create(webapp.url, unique("tls")).status_code == 503


def test_https_sends_hsts_and_secure_host_cookies(
    pki: Pki, mtls_users: tuple[LoggedProcess, str], spawn_webapp: Callable[..., Webapp]
) -> None:
    cert, key = pki.ca.issue("web", ip_addresses=["127.0.0.1"]).write(pki.root / "web")
    env = {"WEBAPP_TLS_CERT_FILE": str(cert), "WEBAPP_TLS_KEY_FILE": str(key), **_client_env(pki)}
    webapp = spawn_webapp(_localhost(mtls_users[1]), **env)
    https = webapp.url.replace("http://", "https://")
    verify = ssl.create_default_context(cafile=str(pki.ca_file))
    page = _page(f"{https}/", verify)
    assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert page.status_code == 200, webapp.process.log()
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-csrftoken=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    with httpx.Client(base_url=https, verify=verify, timeout=10) as browser:
        token = csrf_token(browser.get("/signin", headers={"Accept": "text/html"}))
        form = {"csrf_token": token, "username": ADMIN_NAME, "password": ADMIN_PASSWORD}
        signed_in = browser.post("/signin", data=form)
        assert signed_in.status_code == 303, signed_in.text
        session = signed_in.headers["set-cookie"]
        assert session.startswith("__Host-session=")
        for attribute in ("HttpOnly", "Secure", "Path=/", "SameSite=lax"):
            assert attribute in session
        assert "Domain" not in session  # a __Host- cookie is host-only
        assert browser.get("/", headers={"Accept": "text/html"}).status_code == 200


def test_plain_http_sends_neither_hsts_nor_secure_cookies(
    pki: Pki, mtls_users: tuple[LoggedProcess, str], spawn_webapp: Callable[..., Webapp]
) -> None:
    webapp = spawn_webapp(_localhost(mtls_users[1]), **_client_env(pki))
    page = _page(f"{webapp.url}/")
    assert "strict-transport-security" not in page.headers
    assert page.headers["set-cookie"].startswith("csrftoken=")
    assert "Secure" not in page.headers["set-cookie"]


def test_bad_tls_file_stops_the_start_naming_it(pki: Pki) -> None:
    missing = pki.root / "nope.pem"
    process = LoggedProcess(
        [sys.executable, "-m", "webapp"],
        {
            "WEBAPP_SECRET_KEY": "x" * 32,
            "WEBAPP_PORT": str(free_port()),
            "WEBAPP_USERS_TLS_CA_FILE": str(missing),
        },
    )
    assert process.proc.wait(timeout=20) == 1
    process.stop()
    assert f"CA file {missing}: missing" in process.log()
