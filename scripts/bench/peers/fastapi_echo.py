"""The bare framework endpoint: FastAPI returning the read endpoint's JSON from memory.

Served by uvicorn with the webapp's settings (no access log, no server header).
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from scripts.bench.peers.canned import canned_json, port_argument

app = FastAPI()
_USER = canned_json()


@app.get("/api/v1/users/{user_id}")
async def get_user(user_id: int) -> JSONResponse:
    """The canned user, whatever the id."""
    return JSONResponse(_USER, headers={"ETag": f'"{_USER["etag"]}"'})


def main() -> None:
    args = port_argument(__doc__.splitlines()[0])
    config = uvicorn.Config(
        app,
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
