"""The bare framework endpoint: FastAPI returning the read endpoint's JSON from memory.

With `--users-target`, the endpoint asks the users service for the user first (one grpc.aio
GetUser on one channel, nothing else): the least a gRPC-backed endpoint can cost. Served by
uvicorn with the webapp's settings (no access log, no server header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from users.v1 import users_pb2, users_pb2_grpc
from webapp.gateway.values import user_json

from scripts.bench.peers.canned import canned_user, port_argument


def create_app(users_target: str) -> FastAPI:
    """The app: the canned user from memory, or from the users service at `users_target`."""
    stubs: list[users_pb2_grpc.UserServiceStub] = []
    canned = user_json(canned_user())  # the webapp's own JSON shape

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if users_target:
            async with grpc.aio.insecure_channel(users_target) as channel:
                stubs.append(users_pb2_grpc.UserServiceStub(channel))
                yield
        else:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/v1/users/{user_id}")
    async def get_user(user_id: int) -> JSONResponse:
        if not stubs:
            return JSONResponse(canned, headers={"ETag": f'"{canned["etag"]}"'})
        user = await stubs[0].GetUser(users_pb2.GetUserRequest(id=user_id), timeout=10)
        return JSONResponse(user_json(user), headers={"ETag": f'"{user.etag}"'})

    return app


def main() -> None:
    args = port_argument(__doc__.splitlines()[0])
    config = uvicorn.Config(
        create_app(args.users_target),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
