"""health, call (any reflected method), login and logout."""

from __future__ import annotations

import sys

import click
import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from users.v1 import users_pb2, users_pb2_grpc

from userstack_cli.channel import open_channel
from userstack_cli.credentials import store_token
from userstack_cli.dynamic_call import find_method, invoke, requests_from
from userstack_cli.errors import CliError, ExitCode
from userstack_cli.output import chosen, json_line, print_fields, print_json
from userstack_cli.session import Session


@click.command()
@click.option(
    "--service",
    default="users.v1.UserService",
    show_default=True,
    help='the service to ask about ("" for the whole server)',
)
@click.pass_obj
def health(session: Session, service: str) -> None:
    """Ask the gRPC health service; exit 0 only when SERVING (7 otherwise)."""
    stub = health_pb2_grpc.HealthStub(session.channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print_fields(
        {"target": session.connection.target, "service": service, "status": status}, session.output
    )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(ExitCode.UNAVAILABLE)


@click.command()
@click.argument("method")
@click.argument("request", default="{}")
@click.pass_obj
def call(session: Session, method: str, request: str) -> None:
    """Call any METHOD (SERVICE/METHOD) the server reflects with a JSON REQUEST ('-': stdin).

    A client stream takes a JSON array or NDJSON lines; a server stream prints NDJSON."""
    text = sys.stdin.read() if request == "-" else request
    descriptor = find_method(session.channel, method)
    messages = requests_from(descriptor, text)
    responses = invoke(session.channel, descriptor, messages, session.connection.timeout)
    for response in responses:
        value = json_format.MessageToDict(response, preserving_proto_field_name=True)
        if descriptor.server_streaming:
            click.echo(json_line(value))
        else:
            print_json(value)


@click.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin")
@click.pass_obj
def login(session: Session, username: str, password_stdin: bool) -> None:
    """Sign in as USERNAME and keep the token for this target (a file only you can read)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True)
    # Anonymous: a stale stored token must not stand in the way of getting a new one.
    channel = open_channel(session.connection, None)
    try:
        signed_in = _sign_in(channel, username, password)
    finally:
        channel.close()
    path = store_token(
        session.connection.target,
        {
            "access_token": signed_in.access_token,
            "username": signed_in.user.username,
            "expire_time": signed_in.expire_time.ToJsonString(),
        },
    )
    summary = {
        "signed_in": signed_in.user.username,
        "expires": signed_in.expire_time.ToJsonString(),
        "stored_in": str(path),
    }
    print_fields(summary, session.output)


def _sign_in(channel: grpc.Channel, username: str, password: str) -> users_pb2.SignInResponse:
    stub = users_pb2_grpc.AuthServiceStub(channel)
    reply: users_pb2.SignInResponse = stub.SignIn(
        users_pb2.SignInRequest(username=username, password=password)
    )
    if not reply.access_token:
        raise CliError("the server signed in without a token", ExitCode.FAILURE)
    return reply


@click.command()
@click.pass_obj
def logout(session: Session) -> None:
    """Forget the token stored for this target."""
    path = store_token(session.connection.target, {})
    if chosen(session.output) == "json":
        print_json({"signed_out": session.connection.target, "file": str(path)})
    else:
        click.echo(f"forgot the token for {session.connection.target} ({path})")


COMMANDS = [health, call, login, logout]
