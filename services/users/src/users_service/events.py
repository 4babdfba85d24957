"""The in-process change feed behind WatchUsers: bounded queues, slow subscribers dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from users.v1 import users_pb2

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
DEFAULT_MAX_SUBSCRIBERS = 100


class TooManySubscribers(Exception):  # noqa: N818 - reads as the condition it reports
    """Every subscriber slot is taken; `retry_after` seconds is worth waiting."""

    retry_after = 5


class SubscriberTooSlow(Exception):  # noqa: N818 - reads as the condition it reports
    """The subscriber fell more than its queue size behind and was dropped."""


class ChangesMissed(Exception):  # noqa: N818 - reads as the condition it reports
    """The store stopped hearing changes: the subscriber may have missed some, and must re-list."""


class Subscription:
    """One listener's bounded queue; registered from creation, so no event after it is missed."""

    def __init__(self, feed: Broadcaster, size: int, *, ended: bool = False) -> None:
        self._feed = feed
        self._size = size
        self.queue: asyncio.Queue[users_pb2.UserEvent | None] = asyncio.Queue(size)
        self.overflowed = False
        self.ended = ended
        self.missed: str | None = None  # why changes may have been missed, once they may

    def wake(self) -> None:
        """Wakes a waiting reader; None is only a wake-up call, never an event."""
        if not self.queue.full():
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[users_pb2.UserEvent]:
        """Yields the events; raises SubscriberTooSlow once dropped, ChangesMissed (after the
        events queued before) once the store lost its feed; ends when the feed closes."""
        try:
            while True:
                if self.overflowed:
                    raise SubscriberTooSlow(f"fell more than {self._size} events behind")
                if self.missed is not None and self.queue.empty():
                    raise ChangesMissed(f"{self.missed}: list again, then watch again")
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

    def __init__(
        self, queue_size: int = DEFAULT_QUEUE_SIZE, max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS
    ) -> None:
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._subscriptions: set[Subscription] = set()
        self._closed = False
        self._interrupted: str | None = None

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are listening now."""
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        """A subscription to every event published from now on (none once closed).

        While the feed is interrupted, the subscription fails at once: it could not promise
        every change. TooManySubscribers when every slot is taken.
        """
        subscription = Subscription(self, self._queue_size, ended=self._closed)
        if self._closed:
            return subscription
        if self._interrupted is not None:
            subscription.missed = self._interrupted
            return subscription
        if len(self._subscriptions) >= self._max_subscribers:
            raise TooManySubscribers(f"all {self._max_subscribers} WatchUsers slots are taken")
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

    def interrupt(self, reason: str) -> None:
        """Events may have been lost upstream: every subscription fails with ChangesMissed
        after its queued events, and so do new ones until `resume()`."""
        self._interrupted = reason
        for subscription in self._subscriptions:
            subscription.missed = reason
            subscription.wake()
        self._subscriptions.clear()
        logger.warning("ended every WatchUsers subscriber: %s", reason)

    def resume(self) -> None:
        """Events flow again: new subscriptions hear every event from now on."""
        self._interrupted = None

    def close(self) -> None:
        """Ends every subscription cleanly after its queued events; new ones end at once."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription.ended = True
            subscription.wake()
        self._subscriptions.clear()
