"""One command's session: its connection settings, and the channel opened on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from plumbing.tls import TlsFiles
from users.v1 import users_pb2_grpc

from userstack_cli.channel import open_channel
from userstack_cli.connection import Connection, Transport, resolve
from userstack_cli.credentials import stored_token
from userstack_cli.errors import CliError, ExitCode


@dataclass
class Options:
    """The global options, as given (flags, else environment, else defaults)."""

    target: str | None = None
    plaintext: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None
    timeout: float = 10.0
    connect_timeout: float = 5.0
    output: str = "auto"


@dataclass
class Session:
    """What the commands share: the options, the resolved connection, the channel (lazily)."""

    options: Options
    connection: Connection = field(init=False)
    _channel: grpc.Channel | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        o = self.options
        files = TlsFiles(o.cert_file, o.key_file, o.ca_file)
        resolved = resolve(o.target, plaintext=o.plaintext, files=files)
        self.connection = Connection(
            resolved.target, resolved.transport, resolved.tls, o.timeout, o.connect_timeout
        )

    @property
    def output(self) -> str:
        """auto, table or json."""
        return self.options.output

    @property
    def channel(self) -> grpc.Channel:
        """The ready channel (opened on first use, with the token if there is one)."""
        if self._channel is None:
            self._channel = open_channel(self.connection, self.token())
        return self._channel

    def token(self) -> str | None:
        """--token / USERSTACK_TOKEN, else the one `userstack login` stored for this target.

        Never over plaintext to another machine: a bearer token is as good as a password."""
        token = self.options.token or stored_token(self.connection.target)
        plaintext = self.connection.transport is Transport.PLAINTEXT
        if token and plaintext and not self.connection.local:
            raise CliError(
                f"refusing to send a token in plaintext to {self.connection.target}:"
                " use TLS (--ca-file), or a local target",
                ExitCode.INVALID,
            )
        return token

    @property
    def users(self) -> Any:
        """A users.v1.UserService stub."""
        return users_pb2_grpc.UserServiceStub(self.channel)

    @property
    def auth(self) -> Any:
        """A users.v1.AuthService stub."""
        return users_pb2_grpc.AuthServiceStub(self.channel)

    def close(self) -> None:
        """Closes the channel if it was opened."""
        if self._channel is not None:
            self._channel.close()
