"""plumbing.tokens with real keys: the key ring, signing and verifying, JWKS documents."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from plumbing.tokens import (
    Audience,
    InvalidToken,
    JwksKeys,
    KeyFileError,
    KeyRing,
    UnknownKey,
    Verifier,
    generate_key_file,
    sign,
)

AUDIENCE = Audience("https://issuer.test", "api")


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": AUDIENCE.issuer, "aud": AUDIENCE.audience, "sub": "1", "iat": now,
            "exp": now + 60, **changes}  # fmt: skip


def test_the_newest_key_signs_and_every_key_verifies(tmp_path: Path) -> None:
    older = generate_key_file(tmp_path)
    ring = KeyRing(tmp_path, check_every_seconds=0)
    old_token = sign(ring.signing, _claims())
    newer = generate_key_file(tmp_path)
    assert newer.name > older.name
    assert ring.refresh()
    new_token = sign(ring.signing, _claims())
    verifier = Verifier(AUDIENCE, ring.public_key)
    assert verifier.verify(old_token)["sub"] == verifier.verify(new_token)["sub"] == "1"
    assert (
        jwt.get_unverified_header(old_token)["kid"] != jwt.get_unverified_header(new_token)["kid"]
    )
    assert len(ring.jwks()["keys"]) == 2
    older.unlink()
    assert ring.refresh()
    with pytest.raises(UnknownKey):
        verifier.verify(old_token)
    assert not ring.refresh()  # nothing changed since


def test_a_serving_key_ring_keeps_its_keys_when_the_directory_goes_bad(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path)
    ring = KeyRing(tmp_path, check_every_seconds=0)
    signing = ring.signing
    (tmp_path / "half-copied.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    assert not ring.refresh()
    key.unlink()
    (tmp_path / "half-copied.pem").unlink()
    assert not ring.refresh()  # empty: kept, not emptied
    assert ring.signing is signing


def test_a_key_ring_refuses_an_empty_directory_and_a_key_of_another_kind(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no signing key"):
        KeyRing(tmp_path)
    (tmp_path / "rsa.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(KeyFileError, match=r"rsa\.pem"):
        KeyRing(tmp_path)


def test_key_files_are_private(tmp_path: Path) -> None:
    assert generate_key_file(tmp_path).stat().st_mode & 0o077 == 0


def test_a_verifier_never_accepts_none_or_hmac() -> None:
    for algorithms in (("none",), ("HS256",), ("EdDSA", "HS512")):
        with pytest.raises(ValueError, match="not allowed"):
            Verifier(Audience("i", "a", algorithms), lambda kid: None)


def test_a_token_of_an_algorithm_not_allowed_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), key, algorithm="ES256", headers={"kid": "k"})
    verifier = Verifier(AUDIENCE, lambda kid: key.public_key())  # EdDSA only
    with pytest.raises(InvalidToken, match="not accepted"):
        verifier.verify(token)


def test_jwks_documents_parse_or_say_why_not() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    keys = JwksKeys.parse(json.dumps({"keys": [{**jwk, "kid": "a", "alg": "ES256"}]}))
    assert keys.public_key("a") is not None
    assert keys.public_key("b") is None
    for bad in ("not json", "{}", '{"keys": [{"kty": "nope"}]}'):
        with pytest.raises(ValueError, match="JWKS"):
            JwksKeys.parse(bad)
