"""The store a database URL names: SQLite for sqlite:///, PostgreSQL for postgresql://."""

from __future__ import annotations

from collections.abc import Callable

from users_service.database_url import SQLITE_PREFIX, check_url, sqlite_path
from users_service.store.base import ChangeListener, FeedStateListener, UserStore
from users_service.store.sqlite import SqliteUserStore


def build_store(
    url: str,
    on_change: ChangeListener | None = None,
    on_feed_state: FeedStateListener | None = None,
    *,
    pool_size: int | None = None,
    on_commit_batch: Callable[[int], None] | None = None,
) -> UserStore:
    """The store the URL's scheme names (not yet opened); every change goes to `on_change`.

    `on_feed_state` hears when the store stops (and starts again) hearing changes: only the
    PostgreSQL store's feed, a connection of its own, can be lost. `pool_size` is PostgreSQL's
    connections for calls (None: the store's default). `on_commit_batch` hears the number of
    users each shared commit (group commit) creates.

    Example:
        >>> store = build_store("sqlite:///data/users.db")
        >>> type(store).__name__
        'SqliteUserStore'
    """
    check_url(url)
    if url.startswith(SQLITE_PREFIX):
        return SqliteUserStore(sqlite_path(url), on_change, on_commit_batch=on_commit_batch)
    # Imported here, not at the top: psycopg is about a third of a SQLite server's start-up
    # (0.4 s of 1.5 s of CPU, `python -X importtime`), paid by every test and bench server.
    from users_service.store.postgres import DEFAULT_POOL_SIZE, PostgresUserStore  # noqa: PLC0415

    return PostgresUserStore(
        url, on_change, on_feed_state, pool_size=pool_size or DEFAULT_POOL_SIZE,
        on_commit_batch=on_commit_batch,
    )  # fmt: skip
