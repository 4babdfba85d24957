"""Tokens for tests: a test operator's OIDC issuer (a real key, its JWKS file, real signed
tokens) that test servers trust, and channels that carry a token on every call.

The shared fixtures give the users servers they start this issuer, and their channels its admin
token, so that tests written before access control keep their meaning; tests of access itself
use explicit anonymous, member and admin channels.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from plumbing.tokens import generate_key_file, key_id

OPERATOR_ISSUER = "https://operators.userstack.test"
AUDIENCE = "userstack"
ROLE_CLAIM = "roles"


class TestIssuer:
    """An OIDC issuer of the tests' own: an Ed25519 key, its JWKS in `directory`, tokens.

    Example:
        >>> issuer = TestIssuer(tmp_path)
        >>> env = issuer.server_env()            # USERS_OIDC_* for a server
        >>> metadata = issuer.metadata("admin")  # (("authorization", "Bearer ..."),)
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, directory: Path, issuer: str = OPERATOR_ISSUER) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.issuer = issuer
        self.key = Ed25519PrivateKey.generate()
        self.kid = key_id(self.key.public_key())
        self.jwks_file = directory / "operators-jwks.json"
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, alg="EdDSA", use="sig")
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))
        self.signing_keys_dir = directory / "signing-keys"
        if not any(self.signing_keys_dir.glob("*.pem")):
            generate_key_file(self.signing_keys_dir)

    def token(self, role: str = "admin", ttl: float = 3600, **claims: Any) -> str:
        """A token of this issuer, the role in its role claim; `claims` add or override."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": f"test-{role}",
            ROLE_CLAIM: [role],
            "iat": now,
            "exp": now + int(ttl),
            "jti": secrets.token_urlsafe(8),
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def metadata(self, role: str = "admin") -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a token with this role."""
        return (("authorization", f"Bearer {self.token(role)}"),)

    def server_env(self) -> dict[str, str]:
        """The USERS_* variables that make a users server trust this issuer (and sign with the
        tests' key directory)."""
        return {
            "USERS_SIGNING_KEYS_DIR": str(self.signing_keys_dir),
            "USERS_OIDC_ISSUER": self.issuer,
            "USERS_OIDC_AUDIENCE": AUDIENCE,
            "USERS_OIDC_JWKS": str(self.jwks_file),
            "USERS_OIDC_ROLE_CLAIM": ROLE_CLAIM,
            "USERS_OIDC_ALGORITHMS": "EdDSA",
        }


def with_token(credentials: Any | None, token: str) -> Any:
    """Channel credentials that send `authorization: Bearer <token>` on every call: over TLS
    with `credentials`, else plaintext to a loopback address (gRPC's local credentials, which
    alone among the plaintext ones may carry call credentials)."""
    transport = credentials or grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    return grpc.composite_channel_credentials(transport, grpc.access_token_call_credentials(token))
