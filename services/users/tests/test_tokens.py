"""Broken authentication (OWASP API2): every kind of bad token ends UNAUTHENTICATED, with real
tokens crafted from the server's own key (or forged without it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from plumbing.tokens import SigningKey, key_id, load_key_file
from testkit.tokens import TestIssuer
from users.v1 import users_pb2, users_pb2_grpc

from .accounts_kit import PASSWORD, Account, Accounts, bearer
from .conftest import auth_settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Forge:
    """Tokens for one account, good and bad, signed with the server's key unless said."""

    def __init__(self, key: SigningKey, account: Account) -> None:
        self.key = key
        self.account = account
        self.claims = jwt.decode(account.token, options={"verify_signature": False})

    def sign(self, key: Any = None, kid: str | None = None, **changes: Any) -> str:
        # A change to None leaves the claim out.
        claims = {k: v for k, v in {**self.claims, **changes}.items() if v is not None}
        headers = {"kid": kid or self.key.kid}
        return jwt.encode(claims, key or self.key.private_key, algorithm="EdDSA", headers=headers)

    def unsigned(self) -> str:
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.key.kid}).encode())
        return f"{header}.{_b64(json.dumps(self.claims).encode())}."

    def hs256_with_public_key(self) -> str:
        public = self.key.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = (
            f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(self.claims).encode())}"
        )

        mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def tampered(self) -> str:
        header, _, signature = self.account.token.split(".")
        payload = _b64(json.dumps({**self.claims, "role": "admin"}).encode())
        return f"{header}.{payload}.{signature}"


@pytest.fixture
async def forge(
    start_server: Any, test_issuer: TestIssuer
) -> AsyncIterator[tuple[Forge, users_pb2_grpc.AuthServiceStub]]:
    _, port = await start_server(auth=auth_settings(test_issuer))
    [key_file] = sorted(test_issuer.signing_keys_dir.glob("*.pem"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        account = await Accounts(channel, test_issuer.token("admin")).new()
        yield Forge(load_key_file(key_file), account), users_pb2_grpc.AuthServiceStub(channel)


async def _who_am_i(auth: Any, authorization: str | None) -> tuple[str, str]:
    metadata = () if authorization is None else (("authorization", authorization),)
    try:
        await auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return str(error.code().name), str(error.details())
    return "OK", ""


async def test_the_genuine_token_is_accepted(forge: tuple[Forge, Any]) -> None:
    tokens, auth = forge
    assert await _who_am_i(auth, f"Bearer {tokens.account.token}") == ("OK", "")
    # ... and one the test signs with the same key and claims: the forge itself is sound.
    assert await _who_am_i(auth, f"Bearer {tokens.sign()}") == ("OK", "")


BAD: dict[str, Callable[[Forge], str | None]] = {
    "missing": lambda f: None,
    "not bearer": lambda f: f"Basic {f.account.token}",
    "malformed": lambda f: "Bearer not.a.token",
    "empty": lambda f: "Bearer ",
    "expired": lambda f: f"Bearer {f.sign(exp=int(time.time()) - 60, iat=int(time.time()) - 120)}",
    "not yet valid": lambda f: f"Bearer {f.sign(nbf=int(time.time()) + 120)}",
    "issued in the future": lambda f: f"Bearer {f.sign(iat=int(time.time()) + 120)}",
    "wrong audience": lambda f: f"Bearer {f.sign(aud='someone-else')}",
    "wrong issuer": lambda f: f"Bearer {f.sign(iss='https://evil.example')}",
    "no expiry": lambda f: f"Bearer {f.sign(exp=None)}",
    "tampered": lambda f: f"Bearer {f.tampered()}",
    "alg none": lambda f: f"Bearer {f.unsigned()}",
    "HS256 with the public key": lambda f: f"Bearer {f.hs256_with_public_key()}",
    "another key, same kid": lambda f: f"Bearer {f.sign(key=Ed25519PrivateKey.generate())}",
    "unknown key": lambda f: (
        f"Bearer {f.sign(key=(k := Ed25519PrivateKey.generate()), kid=key_id(k.public_key()))}"
    ),
    "another user's id": lambda f: f"Bearer {f.sign(sub='999999')}",
    "another version": lambda f: f"Bearer {f.sign(ver=f.claims['ver'] + 1)}",
}


@pytest.mark.parametrize("kind", list(BAD))
async def test_a_bad_token_is_unauthenticated(forge: tuple[Forge, Any], kind: str) -> None:
    tokens, auth = forge
    authorization = BAD[kind](tokens)
    code, details = await _who_am_i(auth, authorization)
    assert code == "UNAUTHENTICATED", (kind, details)
    assert tokens.account.token not in details  # the answer never echoes a token


async def test_a_revoked_token_is_unauthenticated_and_a_new_one_works(
    forge: tuple[Forge, Any],
) -> None:
    tokens, auth = forge
    md = bearer(tokens.account.token)
    await auth.SignOutEverywhere(users_pb2.SignOutEverywhereRequest(), metadata=md)
    assert await _who_am_i(auth, md[0][1]) == ("UNAUTHENTICATED", "the token was revoked")
    signed = await auth.SignIn(
        users_pb2.SignInRequest(username=tokens.account.username, password=PASSWORD)
    )
    assert (await _who_am_i(auth, f"Bearer {signed.access_token}"))[0] == "OK"
