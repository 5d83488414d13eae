"""The dashboard: fleet totals for CPU, memory and disk, and a tile per host, refreshing live."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.dashboard import dashboard_view
from dockmesh.server.web.render import render, require_session

routes = RouteTable("web")


@routes.route("GET", "/", summary="Dashboard page: fleet totals and per-host tiles", auth=False)
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    return render(
        request,
        "dashboard.html",
        {
            "title": "Dashboard",
            "dash": await dashboard_view(c, session.user),
            "has_agents": bool(await c.agents.all()),
        },
        session=session,
        active="dashboard",
        fragments={"dashboard": "_dashboard_body.html"},
    )
