"""Hosts: the local engine plus every enrolled agent, with status, tags and pushed metrics."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.errors import json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import hosts
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
