"""`python -m scripts.bench.token_cost`: what the access check costs per call, in process.

Prints the best of 5 runs of: verifying a token from scratch (PyJWT, Ed25519: what a replica pays
once per token) and admitting a call with a token it already verified (what every later call
pays: users_service.access.Guard.admit_now). `make bench`'s "member token" rows measure the
whole call.
"""

from __future__ import annotations

import asyncio
import tempfile
import timeit
from pathlib import Path

from plumbing.tokens import Audience, KeyRing, Verifier, generate_key_file
from users.v1 import users_pb2
from users_service.access import Access
from users_service.identity import Authenticator, TokenIssuer
from users_service.store import NewUser
from users_service.store.sqlite import SqliteUserStore

AUDIENCE = Audience("userstack", "userstack")
CALLS = 2000


async def measure(directory: Path) -> tuple[float, float]:
    """(µs per full verification, µs per admission of a known token)."""
    generate_key_file(directory / "keys")
    store = SqliteUserStore(directory / "users.db")
    await store.open()
    try:
        [outcome] = await store.create_users([NewUser("ada")])
        if outcome.user is None:
            raise SystemExit("could not create the user to sign a token for")
        keys = KeyRing(directory / "keys")
        token, _ = TokenIssuer(keys, AUDIENCE, 900).issue(outcome.user)
        verifier = Verifier(AUDIENCE, keys.public_key)
        access = Access(Authenticator(store, keys, AUDIENCE), anonymous_reflection=False)
        guard = access.guard("/users.v1.UserService/GetUser")
        if guard is None:
            raise SystemExit("GetUser has no access check")
        metadata = (("authorization", f"Bearer {token}"),)
        request = users_pb2.GetUserRequest(id=outcome.user.id)
        await guard.admit(metadata, request)  # verified and known from now on
        full = min(timeit.repeat(lambda: verifier.verify(token), number=CALLS, repeat=5))
        admit = guard.admit_now
        known = min(timeit.repeat(lambda: admit(metadata, request), number=CALLS * 10, repeat=5))
    finally:
        await store.close()
    return full / CALLS * 1e6, known / (CALLS * 10) * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        full, known = asyncio.run(measure(Path(directory)))
    print(f"verify a token: {full:.1f} µs; admit a call with a known token: {known:.2f} µs")


if __name__ == "__main__":
    main()
