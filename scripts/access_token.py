"""`make token`: print an admin access token for the running stack (signs in as the first admin).

    python -m scripts.access_token [--target HOST:PORT] [--certs certs] [--env .env]

Reads USERS_ADMIN_USERNAME (default admin) and USERS_ADMIN_PASSWORD from the environment, else
from .env (where `make up` wrote them); calls AuthService/SignIn over mTLS with the developer's
client certificate (certs/client.pem). Prints the token alone, for
`grpcurl -H "authorization: Bearer $(make -s token)"` and `curl -H ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from users.v1 import users_pb2, users_pb2_grpc


def dotenv(path: Path) -> dict[str, str]:
    """The NAME=value lines of a .env file (the last of each name wins)."""
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if not name.startswith("#")}


def setting(name: str, env_file: dict[str, str], default: str = "") -> str:
    """The environment's value, then .env's, then the default (as compose reads them)."""
    return os.environ.get(name) or env_file.get(name) or default


def sign_in(target: str, certs: Path, username: str, password: str) -> str:
    """The access token of username/password, from the users service at `target` over mTLS."""
    credentials = grpc.ssl_channel_credentials(
        (certs / "ca.pem").read_bytes(),
        (certs / "client.key").read_bytes(),
        (certs / "client.pem").read_bytes(),
    )
    with grpc.secure_channel(target, credentials) as channel:
        stub = users_pb2_grpc.AuthServiceStub(channel)
        request = users_pb2.SignInRequest(username=username, password=password)
        return str(stub.SignIn(request, timeout=10).access_token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="", help="default: localhost:USERSTACK_GRPC_PORT")
    parser.add_argument("--certs", type=Path, default=Path("certs"))
    parser.add_argument("--env", type=Path, default=Path(".env"))
    args = parser.parse_args()
    env_file = dotenv(args.env)
    password = setting("USERS_ADMIN_PASSWORD", env_file)
    if not password:
        sys.exit("token: no USERS_ADMIN_PASSWORD in the environment or .env: run `make up` first")
    target = args.target or f"localhost:{setting('USERSTACK_GRPC_PORT', env_file, '50051')}"
    username = setting("USERS_ADMIN_USERNAME", env_file, "admin")
    try:
        print(sign_in(target, args.certs, username, password))
    except grpc.RpcError as error:
        sys.exit(f"token: sign-in at {target} failed: {error.code().name}: {error.details()}")
    except OSError as error:
        sys.exit(f"token: {error} (make up writes certs/)")


if __name__ == "__main__":
    main()
