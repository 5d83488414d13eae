"""Fleet totals and a tile per host, from the metrics hosts push with their heartbeats."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.jsonio import json_response
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.dashboard import dashboard_view

routes = RouteTable("dashboard")


@routes.route("GET", "/api/v1/dashboard", summary="Fleet totals (CPU, memory, disk) and per-host tiles")
async def dashboard(request: web.Request) -> web.Response:
    return json_response(await dashboard_view(ctx(request), current_user(request)))
