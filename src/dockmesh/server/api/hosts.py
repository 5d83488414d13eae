"""Hosts: the local engine plus every enrolled agent, with status, tags and pushed metrics."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.errors import json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import hosts, maintenance
from dockmesh.server.services.hosts import MAX_TAGS

routes = RouteTable("hosts")


@routes.route("GET", "/api/v1/hosts", summary="Every host (local + agents) with status, tags and metrics")
async def list_hosts(request: web.Request) -> web.Response:
    return web.json_response({"items": await hosts.host_views(ctx(request), current_user(request))})


@routes.route(
    "PUT",
    "/api/v1/hosts/{id}/tags",
    summary="Replace a host's tags",
    body={
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_TAGS}},
        "required": ["tags"],
    },
)
async def put_tags(request: web.Request) -> web.Response:
    user = current_user(request)
    host_id = request.match_info["id"]
    body = await json_body(request)
    unique = await hosts.set_tags(ctx(request), user, host_id, body.get("tags"))
    return web.json_response({"id": host_id, "tags": unique})


async def _cordon(request: web.Request, cordoned: bool) -> web.Response:
    c = ctx(request)
    host_id = request.match_info["id"]
    caller = current_user(request)
    name = await maintenance.set_cordoned(c.agents, c.audit, c.clock(), caller, host_id, cordoned)
    return web.json_response({"id": host_id, "name": name, "cordoned": cordoned})


@routes.route(
    "POST",
    "/api/v1/hosts/{id}/cordon",
    summary="Cordon a host: it takes no new deploys or migrations; what runs there keeps running",
    responses={404: "host_not_found", 403: "forbidden (hosts.manage)", 409: "not_cordonable (local)"},
)
async def cordon(request: web.Request) -> web.Response:
    return await _cordon(request, True)


@routes.route(
    "POST",
    "/api/v1/hosts/{id}/uncordon",
    summary="Uncordon a host: it takes deploys again (nothing moves back by itself)",
    responses={404: "host_not_found", 403: "forbidden (hosts.manage)", 409: "not_cordonable (local)"},
)
async def uncordon(request: web.Request) -> web.Response:
    return await _cordon(request, False)
