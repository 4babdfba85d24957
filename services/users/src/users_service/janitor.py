"""Housekeeping on a timer: idempotency keys older than their time to live are purged."""

from __future__ import annotations

import asyncio
import logging

from users_service.store import StoreError, UserStore

logger = logging.getLogger(__name__)

# How often at most; a key lives its TTL and is gone within this much after.
MAX_PURGE_INTERVAL_SECONDS = 3600.0


async def purge_idempotency_keys(store: UserStore, ttl_seconds: float) -> None:
    """Purges expired idempotency keys every min(TTL / 2, an hour), until cancelled.

    A create replayed with its request_id within the TTL is answered as the first one was;
    after it (and the next purge) the request_id is free again: docs/limits.md.
    """
    interval = min(ttl_seconds / 2, MAX_PURGE_INTERVAL_SECONDS)
    while True:
        try:
            purged = await store.purge_idempotency_keys(ttl_seconds)
        except StoreError as error:
            logger.warning("idempotency key purge failed: %s", error)
        else:
            if purged:
                logger.info("purged expired idempotency keys", extra={"purged": purged})
        await asyncio.sleep(interval)
