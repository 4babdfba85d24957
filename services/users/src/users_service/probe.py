"""users-healthcheck: asks a gRPC health service for a status; exit 0 only when SERVING.

It speaks TLS when given a CA (or the server's own USERS_TLS_* files, as inside the container),
presenting a client certificate when it has one, so it works against a server requiring mTLS.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plumbing.tls import TlsError, TlsFiles, channel_credentials, load_material


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="users-healthcheck",
        description="Exit 0 when the gRPC health service reports SERVING, 1 otherwise.",
        epilog="TLS is on when a CA file is given (default: USERS_TLS_CA_FILE, else the system"
        " roots when USERS_TLS_CERT_FILE is set); the certificate and key (default:"
        " USERS_TLS_CERT_FILE/USERS_TLS_KEY_FILE) are presented as the client's.",
    )
    parser.add_argument("--address", default="localhost:50051", help="host:port to ask")
    parser.add_argument("--service", default="", help='service name ("" = the whole server)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    parser.add_argument("--ca-file", type=Path, default=_env_path("USERS_TLS_CA_FILE"))
    parser.add_argument("--cert-file", type=Path, default=_env_path("USERS_TLS_CERT_FILE"))
    parser.add_argument("--key-file", type=Path, default=_env_path("USERS_TLS_KEY_FILE"))
    parser.add_argument(
        "--plaintext", action="store_true", help="no TLS (a plaintext health-only port)"
    )
    return parser.parse_args(argv)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.plaintext or (args.ca_file is None and args.cert_file is None):
        return grpc.insecure_channel(args.address)
    material = load_material(TlsFiles(args.cert_file, args.key_file, args.ca_file))
    return grpc.secure_channel(args.address, channel_credentials(material))


def check(
    address: str, service: str, timeout: float, channel: grpc.Channel | None = None
) -> tuple[bool, str]:
    """(serving?, what to print) for one health Check (plaintext unless `channel` is given)."""
    with channel or grpc.insecure_channel(address) as open_channel:
        stub = health_pb2_grpc.HealthStub(open_channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return False, f"{error.code().name}: {error.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    args = _parse(argv)
    label = f"service {args.service!r} at {args.address}"
    try:
        channel = _channel(args)
    except TlsError as error:
        print(f"{label}: {error}", file=sys.stderr)
        sys.exit(1)
    serving, status = check(args.address, args.service, args.timeout, channel)
    print(f"{label}: {status}", file=sys.stdout if serving else sys.stderr)
    sys.exit(0 if serving else 1)


if __name__ == "__main__":
    main()
