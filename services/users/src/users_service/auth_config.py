"""Identity and access settings (docs/access.md), read with the others from USERS_* variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbing.settings import ConfigError, as_is, boolean, count_between, read, seconds_between

_ttl = seconds_between(30, 86_400)
_window = seconds_between(0.1, 86_400)
_failures = count_between(1, 1_000_000, "attempts")
_concurrency = count_between(1, 64, "hashes")
_memory = count_between(8, 4 * 1024 * 1024, "KiB")
_passes = count_between(1, 100, "passes")
_lanes = count_between(1, 64, "lanes")
DEFAULT_OIDC_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise ValueError("expected a comma-separated list")
    return names


def _password(raw: str) -> str:
    if len(raw) < 12:
        raise ValueError("expected at least 12 characters")
    return raw


@dataclass(frozen=True)
class OidcSettings:
    """An external OpenID Connect issuer whose tokens are accepted too ("" issuer: none).

    `jwks` is a file path or an https:// URL; `role_claim` names the claim (a string or a list
    of strings) whose values `admin_values` and `member_values` map to a role.
    """

    issuer: str = ""
    audience: str = ""
    jwks: str = ""
    role_claim: str = "role"
    admin_values: tuple[str, ...] = ("admin",)
    member_values: tuple[str, ...] = ("member",)
    algorithms: tuple[str, ...] = DEFAULT_OIDC_ALGORITHMS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings:
        """USERS_OIDC_*; ConfigError when an issuer is named without its audience or keys."""
        oidc = cls(
            issuer=read(env, "USERS_OIDC_ISSUER", "", as_is),
            audience=read(env, "USERS_OIDC_AUDIENCE", "", as_is),
            jwks=read(env, "USERS_OIDC_JWKS", "", as_is),
            role_claim=read(env, "USERS_OIDC_ROLE_CLAIM", cls.role_claim, as_is),
            admin_values=read(env, "USERS_OIDC_ADMIN_VALUES", cls.admin_values, _names),
            member_values=read(env, "USERS_OIDC_MEMBER_VALUES", cls.member_values, _names),
            algorithms=read(env, "USERS_OIDC_ALGORITHMS", cls.algorithms, _names),
        )
        if oidc.issuer and not (oidc.audience and oidc.jwks):
            raise ConfigError("USERS_OIDC_ISSUER needs USERS_OIDC_AUDIENCE and USERS_OIDC_JWKS")
        return oidc


@dataclass(frozen=True)
class AuthSettings:
    """Tokens, keys, sign-up, throttling and the first admin.

    Example:
        >>> AuthSettings.from_env({"USERS_TOKEN_TTL_SECONDS": "300"}).token_ttl_seconds
        300.0
    """

    # False turns the authorization check off: allowed only on a loopback address (config.py),
    # for the benchmark's plain row and local experiments.
    enforced: bool = True
    # A directory of Ed25519 private keys (*.pem); the one whose name sorts last signs. None: an
    # ephemeral key made at start (tokens then verify on this process only, until it stops).
    signing_keys_dir: Path | None = None
    issuer: str = "userstack"
    audience: str = "userstack"
    token_ttl_seconds: float = 900.0
    signup_open: bool = False
    anonymous_reflection: bool = False
    # Failed sign-ins allowed per account and per client address within the window.
    signin_account_failures: int = 5
    signin_address_failures: int = 50
    signin_window_seconds: float = 300.0
    # Password hashes computed at once (each on its own thread, off the event loop), and the
    # argon2id parameters: OWASP's recommendation (19 MiB, 2 passes, 1 lane). Stored hashes
    # made with other parameters are replaced at the next sign-in.
    hash_concurrency: int = 2
    hash_memory_kib: int = 19_456
    hash_time_cost: int = 2
    hash_parallelism: int = 1
    # The first admin, made at start when no user has its username ("" for none).
    admin_username: str = ""
    admin_password: str = field(default="", repr=False)
    oidc: OidcSettings = field(default_factory=OidcSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthSettings:
        """USERS_AUTH_*, USERS_TOKEN_*, USERS_SIGNIN_*, USERS_ADMIN_*, USERS_OIDC_*."""
        return cls(
            enforced=read(env, "USERS_AUTH_ENFORCED", cls.enforced, boolean),
            signing_keys_dir=read(env, "USERS_SIGNING_KEYS_DIR", cls.signing_keys_dir, Path),
            issuer=read(env, "USERS_TOKEN_ISSUER", cls.issuer, as_is),
            audience=read(env, "USERS_TOKEN_AUDIENCE", cls.audience, as_is),
            token_ttl_seconds=read(env, "USERS_TOKEN_TTL_SECONDS", cls.token_ttl_seconds, _ttl),
            signup_open=read(env, "USERS_SIGNUP_OPEN", cls.signup_open, boolean),
            anonymous_reflection=read(
                env, "USERS_ANONYMOUS_REFLECTION", cls.anonymous_reflection, boolean
            ),
            signin_account_failures=read(
                env, "USERS_SIGNIN_ACCOUNT_FAILURES", cls.signin_account_failures, _failures
            ),
            signin_address_failures=read(
                env, "USERS_SIGNIN_ADDRESS_FAILURES", cls.signin_address_failures, _failures
            ),
            signin_window_seconds=read(
                env, "USERS_SIGNIN_WINDOW_SECONDS", cls.signin_window_seconds, _window
            ),
            hash_concurrency=read(
                env, "USERS_HASH_CONCURRENCY", cls.hash_concurrency, _concurrency
            ),
            hash_memory_kib=read(env, "USERS_HASH_MEMORY_KIB", cls.hash_memory_kib, _memory),
            hash_time_cost=read(env, "USERS_HASH_TIME_COST", cls.hash_time_cost, _passes),
            hash_parallelism=read(env, "USERS_HASH_PARALLELISM", cls.hash_parallelism, _lanes),
            admin_username=read(env, "USERS_ADMIN_USERNAME", cls.admin_username, as_is),
            admin_password=read(
                env, "USERS_ADMIN_PASSWORD", cls.admin_password, _password, shown=lambda _: "***"
            ),
            oidc=OidcSettings.from_env(env),
        )
