"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from webapp.config import Settings
from webapp.grpc_client import UsersClient


# Both are `async def` though they never await: FastAPI runs a plain `def` dependency in a
# worker thread, a hop that cost each API request about a tenth of the webapp's CPU (make bench).
async def get_client(request: Request) -> UsersClient:
    """The app's users-service client (opened in the lifespan)."""
    client: UsersClient = request.app.state.client
    return client


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


Client = Annotated[UsersClient, Depends(get_client)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
