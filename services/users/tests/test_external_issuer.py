"""An external OIDC issuer: a JWKS the test makes (ES256, from a file or a loopback URL), its
tokens accepted with the role its claim maps to, every other token refused."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc
from users_service.auth_config import OidcSettings
from users_service.server import UsersServer

from .accounts_kit import bearer, code_of
from .conftest import auth_settings

ISSUER = "https://id.company.example"


class Provider:
    """A company's identity provider, as far as tokens go: an ES256 key and its JWKS."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="company-1", alg="ES256", use="sig")
        self.jwks = json.dumps({"keys": [jwk]}).encode()
        self.jwks_file = directory / "company-jwks.json"
        self.jwks_file.write_bytes(self.jwks)

    def token(self, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": "userstack-api",
            "sub": "emp-42",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(payload, key or self.key, algorithm="ES256", headers={"kid": "company-1"})


@pytest.fixture
def provider(tmp_path: Path) -> Provider:
    return Provider(tmp_path)


@pytest.fixture
def served(provider: Provider) -> Iterator[str]:
    """The provider's JWKS over HTTP on a loopback port (its URL)."""

    class Jwks(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(provider.jwks)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    finally:
        httpd.shutdown()
        thread.join(5)
        httpd.server_close()


def _oidc(jwks: str) -> OidcSettings:
    return OidcSettings(
        issuer=ISSUER,
        audience="userstack-api",
        jwks=jwks,
        role_claim="groups",
        admin_values=("userstack-admins",),
        member_values=("staff",),
        algorithms=("ES256",),
    )


async def _codes(port: int, provider: Provider) -> dict[str, tuple[str, str]]:
    """(CreateUser, ListUsers) codes per kind of token."""
    tokens = {
        "admin": provider.token(groups=["staff", "userstack-admins"]),
        "member": provider.token(groups="staff"),
        "no role": provider.token(groups=["contractors"]),
        "wrong audience": provider.token(aud="another-api", groups=["userstack-admins"]),
        "another key": provider.token(
            key=ec.generate_private_key(ec.SECP256R1()), groups=["userstack-admins"]
        ),
    }
    found = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        for kind, token in tokens.items():
            create = users.CreateUser(
                users_pb2.CreateUserRequest(username=f"by-{kind.replace(' ', '-')}"),
                metadata=bearer(token),
            )
            listing = users.ListUsers(users_pb2.ListUsersRequest(), metadata=bearer(token))
            found[kind] = (await code_of(create), await code_of(listing))
    return found


EXPECTED = {
    "admin": ("OK", "OK"),
    "member": ("PERMISSION_DENIED", "OK"),
    "no role": ("PERMISSION_DENIED", "PERMISSION_DENIED"),
    "wrong audience": ("UNAUTHENTICATED", "UNAUTHENTICATED"),
    "another key": ("UNAUTHENTICATED", "UNAUTHENTICATED"),
}


async def test_tokens_of_an_issuer_whose_jwks_is_a_file(
    start_server: Any, test_issuer: TestIssuer, provider: Provider
) -> None:
    auth = auth_settings(test_issuer, oidc=_oidc(str(provider.jwks_file)))
    _, port = await start_server(auth=auth)
    assert await _codes(port, provider) == EXPECTED


async def test_tokens_of_an_issuer_whose_jwks_is_a_url(
    start_server: Any, test_issuer: TestIssuer, provider: Provider, served: str
) -> None:
    _, port = await start_server(auth=auth_settings(test_issuer, oidc=_oidc(served)))
    assert await _codes(port, provider) == EXPECTED


async def test_a_jwks_url_in_the_clear_off_loopback_stops_the_start(
    test_issuer: TestIssuer, settings: Any
) -> None:
    from dataclasses import replace  # noqa: PLC0415

    auth = auth_settings(test_issuer, oidc=_oidc("http://keys.example/jwks.json"))
    server = UsersServer(replace(settings, auth=auth))
    with pytest.raises(ValueError, match="https"):
        await server.start()
    await server.store.close()
