"""The access settings: read from USERS_*, refused when they would open the service up."""

from __future__ import annotations

import pytest
from users_service.auth_config import AuthSettings
from users_service.config import ConfigError, Settings, check_access


def _settings(env: dict[str, str]) -> Settings:
    return Settings.from_env({"USERS_LISTEN_ADDRESS": "127.0.0.1:50051", **env})


def test_the_defaults_are_closed() -> None:
    auth = _settings({}).auth
    assert (auth.enforced, auth.signup_open, auth.anonymous_reflection) == (True, False, False)
    assert auth.token_ttl_seconds == 900
    assert not auth.oidc.issuer


def test_enforcement_is_turned_off_only_on_loopback() -> None:
    check_access(_settings({"USERS_AUTH_ENFORCED": "false"}))
    public = _settings({"USERS_AUTH_ENFORCED": "false", "USERS_LISTEN_ADDRESS": "0.0.0.0:50051"})
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_access(public)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"USERS_ADMIN_USERNAME": "root"}, "go together"),
        ({"USERS_ADMIN_PASSWORD": "long enough secret"}, "go together"),
        ({"USERS_ADMIN_USERNAME": "root", "USERS_ADMIN_PASSWORD": "short"}, "12 characters"),
        ({"USERS_ADMIN_USERNAME": "Root!", "USERS_ADMIN_PASSWORD": "long enough one"}, "3-32"),
        ({"USERS_TOKEN_TTL_SECONDS": "5"}, "USERS_TOKEN_TTL_SECONDS"),
        ({"USERS_OIDC_ISSUER": "https://id.example"}, "USERS_OIDC_AUDIENCE"),
        ({"USERS_SIGNIN_ACCOUNT_FAILURES": "0"}, "USERS_SIGNIN_ACCOUNT_FAILURES"),
    ],
)
def test_bad_access_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_access(_settings(env))


def test_the_admin_password_is_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_env({"USERS_ADMIN_PASSWORD": "tiny secret"})
    assert "tiny secret" not in str(caught.value)
    assert "hidden" not in repr(AuthSettings(admin_username="root", admin_password="hidden" * 3))
