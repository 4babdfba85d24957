"""The "Using gRPC in Python" tutorial's design: Flask, a new gRPC channel for every request.

Served by Werkzeug's threaded server, as `flask run` does; the users service answers.
"""

from __future__ import annotations

import grpc
from flask import Flask, Response, jsonify
from users.v1 import users_pb2, users_pb2_grpc

from scripts.bench.peers.canned import port_argument

app = Flask(__name__)
USERS_TARGET = ""


@app.get("/api/v1/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    """Asks the users service over a fresh channel, answers its JSON."""
    with grpc.insecure_channel(USERS_TARGET) as channel:
        user = users_pb2_grpc.UserServiceStub(channel).GetUser(
            users_pb2.GetUserRequest(id=user_id), timeout=10
        )
    return jsonify(
        id=user.id,
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        create_time=user.create_time.ToJsonString(),
        update_time=user.update_time.ToJsonString(),
        etag=user.etag,
    )


def main() -> None:
    global USERS_TARGET  # noqa: PLW0603 - set once, before serving
    args = port_argument(__doc__.splitlines()[0])
    USERS_TARGET = args.users_target
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
