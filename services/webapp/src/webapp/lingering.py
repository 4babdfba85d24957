"""uvicorn's HTTP protocol (httptools) with a graceful close of idle keep-alive connections."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# How long an idle keep-alive connection stays open once the server shuts down: a request already
# on its way arrives meanwhile and is served (with `Connection: close`).
IDLE_LINGER_SECONDS = 0.5


class LingeringHttpToolsProtocol(HttpToolsProtocol):
    """On shutdown, uvicorn closes each idle keep-alive connection at once: a request the client
    has just sent on it is reset unread, and the client cannot tell that it never ran. This one
    keeps an idle connection open for IDLE_LINGER_SECONDS and answers what arrives on it with
    `Connection: close`; the client's next request then finds the port closed (connection
    refused: nothing sent). Busy connections end after their response, as with uvicorn.

    Example:
        >>> uvicorn.Config(app, http=LingeringHttpToolsProtocol)  # doctest: +SKIP
    """

    _draining = False

    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(IDLE_LINGER_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # the response says `Connection: close`

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
