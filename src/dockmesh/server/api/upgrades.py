"""Agent upgrades: the fleet's versions and per-host state, the policy, and starting one host's upgrade."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import check
from dockmesh.server.context import ctx
from dockmesh.server.errors import json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.upgrades import POLICIES

routes = RouteTable("upgrades")

POLICY_BODY = {
    "type": "object",
    "properties": {"policy": {"type": "string", "enum": list(POLICIES)}},
    "required": ["policy"],
    "additionalProperties": False,
}


@routes.route(
    "GET",
    "/api/v1/upgrades",
    summary="Server version, upgrade policy, version skew and each visible host's upgrade state",
)
async def list_upgrades(request: web.Request) -> web.Response:
    return web.json_response(await ctx(request).upgrades.overview(current_user(request)))


@routes.route(
    "PUT", "/api/v1/upgrades/policy", summary="Set the upgrade policy (automatic or manual)", body=POLICY_BODY
)
async def put_policy(request: web.Request) -> web.Response:
    user = current_user(request)
    access.check_permission(user, access.AGENTS_MANAGE)  # who may ask, before what was asked
    body = await json_body(request, 4096)
    check(body, POLICY_BODY)
    return web.json_response({"policy": await ctx(request).upgrades.set_policy(user, body["policy"])})


@routes.route(
    "POST",
    "/api/v1/hosts/{id}/upgrade",
    summary="Offer this server's agent build to one host now (agents.manage on that host)",
    responses={200: "the host's upgrade state", 503: "host offline"},
)
async def start_upgrade(request: web.Request) -> web.Response:
    result = await ctx(request).upgrades.start(current_user(request), request.match_info["id"])
    return web.json_response(result)
