"""One thread running blocking work in the order it was handed over, answering on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_Item = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class SerialThread:
    """A thread of its own for work that waits (a commit and its fsync, a long scan).

    The same contract as `loop.run_in_executor` on a one-thread executor (first in, first run;
    the work's exception raised to the awaiting caller; work whose caller was cancelled before
    it started is skipped), at about half its CPU per hop: a SimpleQueue there and one
    `call_soon_threadsafe` back, without a concurrent.futures.Future, its condition and
    callbacks, and a second future wrapping it (docs/performance.md, CreateUser).

    Example:
        >>> writer = SerialThread("users-store-writer")  # doctest: +SKIP
        >>> rows = await writer.run(lambda: conn.execute("SELECT 1").fetchall())
        >>> await writer.close()
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, work: Callable[[], _T]) -> _T:
        """`work()` on the thread, after everything handed over before it; its result."""
        if self._closed:  # as an executor refuses work after its shutdown
            raise RuntimeError(f"{self._name} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        if self._thread is None:
            # A daemon, as no thread of ours may keep the process alive: close() stops it after
            # the work before it. An exit without close() cuts a transaction short, which SQLite
            # rolls back; nothing unfinished was acknowledged.
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put((work, future, loop))
        return await future

    def close(self) -> None:
        """Stops the thread once the work already handed over has run (call it after awaiting
        the last `run`: this waits for the thread without awaiting); later work is refused."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            work, future, loop = item
            if future.cancelled():  # its caller gave up before it started
                continue
            try:
                result = work()
            except BaseException as error:  # noqa: BLE001 - raised to the caller, as an executor does
                _answer(loop, future, None, error)
            else:
                _answer(loop, future, result, None)


def _answer(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: object,
    error: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
