"""Signing key rotation with real keys: a new key signs, the previous one verifies until it is
removed; every replica reads the same key directory."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import jwt
from plumbing.tokens import generate_key_file
from testkit.tokens import TestIssuer
from users.v1 import users_pb2

from .accounts_kit import Account, Accounts, code_of
from .conftest import auth_settings


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Polls `check` every 0.1 s until true, for 10 s at most (the directory is re-read every
    2 s)."""
    deadline = time.monotonic() + 10.0
    while not await check():
        assert time.monotonic() < deadline, "the key directory change was not seen in time"
        await asyncio.sleep(0.1)


def _kid(account: Account) -> str:
    return str(jwt.get_unverified_header(account.token)["kid"])


async def test_a_new_key_signs_and_the_old_one_verifies_until_removed(
    start_server: Any, test_issuer: TestIssuer, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    first = generate_key_file(keys)
    _, port = await start_server(auth=auth_settings(test_issuer, signing_keys_dir=keys))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        accounts = Accounts(channel, test_issuer.token("admin"))
        old = await accounts.new()
        generate_key_file(keys)
        newer: list[Account] = []

        async def signs_with_the_new_key() -> bool:
            newer.append(await accounts.sign_in(old.username))
            return _kid(newer[-1]) != _kid(old)

        await _until(signs_with_the_new_key)
        new = newer[-1]
        jwks = json.loads((await accounts.auth.GetJwks(users_pb2.GetJwksRequest())).jwks_json)
        assert {key["kid"] for key in jwks["keys"]} == {_kid(old), _kid(new)}

        async def who(account: Account) -> str:
            return await code_of(
                accounts.auth.WhoAmI(users_pb2.WhoAmIRequest(), metadata=account.metadata)
            )

        assert (await who(old), await who(new)) == ("OK", "OK")
        first.unlink()

        async def old_key_refused() -> bool:
            return await who(old) == "UNAUTHENTICATED"

        await _until(old_key_refused)
        assert await who(new) == "OK"
        jwks = json.loads((await accounts.auth.GetJwks(users_pb2.GetJwksRequest())).jwks_json)
        assert [key["kid"] for key in jwks["keys"]] == [_kid(new)]
