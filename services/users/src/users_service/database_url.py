"""Database URLs: which store one names, and how it may be logged (never with its password)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
_HIDDEN = "***"


def redact(url: str) -> str:
    """The URL with any password replaced by ***, fit for logs and error messages.

    Example:
        >>> redact("postgresql://app:s3cret@db:5432/users?sslmode=require")
        'postgresql://app:***@db:5432/users?sslmode=require'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _HIDDEN
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + _HIDDEN
    query = parts.query
    if re.search(r"(^|&)password=", query):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, _HIDDEN if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{hosts}", query=query))


def check_url(url: str) -> str:
    """Returns `url` if a store can be built from it; ValueError (password-free) if not."""
    if url.startswith(SQLITE_PREFIX):
        if not url.removeprefix(SQLITE_PREFIX):
            raise ValueError("a sqlite URL needs a path: sqlite:///relative.db, sqlite:////abs.db")
        return url
    scheme = url.partition("://")[0].lower()
    if scheme not in POSTGRES_SCHEMES:
        raise ValueError(
            "expected sqlite:///relative/path.db, sqlite:////absolute/path.db"
            " or postgresql://user:password@host:port/database"
        )
    # Here, not at the top: settings that name no PostgreSQL database never load psycopg.
    import psycopg  # noqa: PLC0415

    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as error:
        raise ValueError(
            f"libpq cannot parse it ({_without_secrets(str(error).strip(), url)})"
        ) from None
    return url


def _without_secrets(message: str, url: str) -> str:
    message = message.replace(url, redact(url))  # libpq quotes a URL it cannot parse
    try:
        password = urlsplit(url).password
    except ValueError:
        return message
    return message.replace(password, _HIDDEN) if password else message


def sqlite_path(url: str) -> Path:
    """The file a sqlite:/// URL names: sqlite:///data/users.db -> data/users.db."""
    return Path(url.removeprefix(SQLITE_PREFIX))
