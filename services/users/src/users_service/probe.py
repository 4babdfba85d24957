"""users-healthcheck: asks a gRPC health service for a status; exit 0 only when SERVING."""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="users-healthcheck",
        description="Exit 0 when the gRPC health service reports SERVING, 1 otherwise.",
    )
    parser.add_argument("--address", default="localhost:50051", help="host:port to ask")
    parser.add_argument("--service", default="", help='service name ("" = the whole server)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    return parser.parse_args(argv)


def check(address: str, service: str, timeout: float) -> tuple[bool, str]:
    """(serving?, what to print) for one health Check."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return False, f"{error.code().name}: {error.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    args = _parse(argv)
    serving, status = check(args.address, args.service, args.timeout)
    label = f"service {args.service!r} at {args.address}"
    print(f"{label}: {status}", file=sys.stdout if serving else sys.stderr)
    sys.exit(0 if serving else 1)


if __name__ == "__main__":
    main()
