"""/docs: Swagger UI served from the app's own files (no CDN, no inline script)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from webapp.routes.ui import templates

# fastapi-offline ships the Swagger UI 5 bundle (OpenAPI 3.1, which FastAPI emits) as package data.
SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Mounts the Swagger UI assets and serves /docs from a template."""
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "docs.html", {})
