"""The Upgrades page: server version, policy, the fleet's version skew and each host's last attempt."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.web.render import render, require_session

routes = RouteTable("web")


@routes.route(
    "GET", "/upgrades", summary="Upgrades page: version skew and per-host upgrade state", auth=False
)
async def upgrades_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    overview = await ctx(request).upgrades.overview(session.user)
    return render(request, "upgrades.html", {"title": "Upgrades", **overview})
