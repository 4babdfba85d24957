"""The in-process change feed behind WatchUsers: bounded queues, slow subscribers dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from users.v1 import users_pb2

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000


class SubscriberTooSlow(Exception):  # noqa: N818 - reads as the condition it reports
    """The subscriber fell more than its queue size behind and was dropped."""


class Subscription:
    """One listener's bounded queue; registered from creation, so no event after it is missed."""

    def __init__(self, feed: Broadcaster, size: int, *, ended: bool = False) -> None:
        self._feed = feed
        self._size = size
        self.queue: asyncio.Queue[users_pb2.UserEvent | None] = asyncio.Queue(size)
        self.overflowed = False
        self.ended = ended

    def wake(self) -> None:
        """Wakes a waiting reader; None is only a wake-up call, never an event."""
        if not self.queue.full():
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[users_pb2.UserEvent]:
        """Yields the events; raises SubscriberTooSlow once dropped; ends when the feed closes."""
        try:
            while True:
                if self.overflowed:
                    raise SubscriberTooSlow(f"fell more than {self._size} events behind")
                if self.ended and self.queue.empty():
                    return
                event = await self.queue.get()
                if event is not None:
                    yield event
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stops listening."""
        self._feed.unsubscribe(self)


class Broadcaster:
    """Fans every published event out to each current subscriber without ever blocking the writer.

    Example:
        >>> feed = Broadcaster()
        >>> subscription = feed.subscribe()
        >>> async for event in subscription.events():  # doctest: +SKIP
        ...     print(event.type)
    """

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are listening now."""
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A subscription to every event published from now on (none once closed)."""
        subscription = Subscription(self, self._queue_size, ended=self._closed)
        if not self._closed:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forgets a subscription."""
        self._subscriptions.discard(subscription)

    def publish(self, event: users_pb2.UserEvent) -> None:
        """Queues the event for every subscriber; one whose queue is full is dropped."""
        for subscription in list(self._subscriptions):
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(subscription)

    def _drop(self, subscription: Subscription) -> None:
        subscription.overflowed = True
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        subscription.wake()
        self._subscriptions.discard(subscription)
        logger.warning(
            "dropped a WatchUsers subscriber that fell %s events behind", self._queue_size
        )

    def close(self) -> None:
        """Ends every subscription cleanly after its queued events; new ones end at once."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription.ended = True
            subscription.wake()
        self._subscriptions.clear()
