"""The `userstack` command: global options, errors -> exit codes, and the subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import grpc

from userstack_cli import bulk_commands, misc_commands, user_commands
from userstack_cli.errors import ExitCode, from_rpc
from userstack_cli.output import FORMATS
from userstack_cli.session import Options, Session

_file = click.Path(dir_okay=False, path_type=Path)


class _Group(click.Group):
    """A group whose commands' gRPC errors become a clear line and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except grpc.RpcError as error:
            raise from_rpc(error) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--target", envvar="USERSTACK_TARGET", help="host:port, or unix:///path.sock")
@click.option("--plaintext", is_flag=True, envvar="USERSTACK_PLAINTEXT", help="no TLS")
@click.option("--ca-file", type=_file, envvar="USERSTACK_CA_FILE", help="CA of the server")
@click.option("--cert-file", type=_file, envvar="USERSTACK_CERT_FILE", help="client cert (mTLS)")
@click.option("--key-file", type=_file, envvar="USERSTACK_KEY_FILE", help="its key")
@click.option("--token", envvar="USERSTACK_TOKEN", help="access token (default: `login`'s)")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    envvar="USERSTACK_TIMEOUT",
    show_default=True,
    help="deadline of each call, seconds",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    envvar="USERSTACK_CONNECT_TIMEOUT",
    show_default=True,
    help="how long to wait for the server, seconds",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(FORMATS),
    default="auto",
    envvar="USERSTACK_OUTPUT",
    show_default=True,
    help="auto: a table on a terminal, JSON otherwise",
)
@click.version_option(package_name="userstack-cli")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """The userstack users service from the command line (docs/cli.md).

    Connects to USERSTACK_TARGET (default localhost:50051), with the TLS files of `make up`'s
    certs/ when found, plaintext to a local `make run-users`.
    """
    session = Session(Options(**options))
    ctx.obj = session
    ctx.call_on_close(session.close)


for module in (user_commands, bulk_commands, misc_commands):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    """The console script."""
    cli.main(prog_name="userstack", standalone_mode=True)


__all__ = ["ExitCode", "cli", "main"]
