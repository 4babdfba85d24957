"""The line each RPC ends with: method, code, duration, request id and peer, batched per turn."""

from __future__ import annotations

import logging

from plumbing.logs import BatchedLog


class RpcLog:
    """Logs the end of each RPC as JsonFormatter would an INFO record of `logger` with the
    extras method, code and duration_ms; written through a BatchedLog, once per loop turn.

    Example:
        >>> rpc_log = RpcLog(logging.getLogger("users_service.calls"))
        >>> rpc_log.write("/users.v1.UserService/GetUser", "OK", 0.41, "req-1")  # doctest: +SKIP
        {"time": "...", "level": "INFO", "logger": "users_service.calls", "message":
         "rpc /users.v1.UserService/GetUser OK", "request_id": "req-1", "method": ..., ...}
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lines = BatchedLog(logger)
        # (method, code) -> the line's fields that depend on nothing else, encoded. The methods
        # are those with a handler and the codes grpc's: no client input grows this.
        self._fixed: dict[tuple[str, str], tuple[str, str]] = {}

    def write(
        self, method: str, code: str, duration_ms: float, request_id: str, peer: str = ""
    ) -> None:
        """Logs the end of an RPC: its method, status code, duration and request id, and `peer`
        (fields already JSON-encoded, each with a leading comma: see calls.peer_fields)."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        fixed = self._fixed.get((method, code))
        if fixed is None:
            fixed = self._fixed[method, code] = (
                self._lines.head(f"rpc {method} {code}"),
                self._lines.fields(method=method, code=code),
            )
        head, tail = fixed
        duration = f', "duration_ms": {round(duration_ms, 3)!r}'
        self._lines.write_encoded(head, request_id, tail + duration + peer)

    def flush(self) -> None:
        """Writes the lines gathered so far."""
        self._lines.flush()
