"""Agents: create (token + install command), list, get, revoke, rotate the enrolment token."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.errors import field_str, json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access, agents

routes = RouteTable("agents")


@routes.route(
    "POST",
    "/api/v1/agents",
    summary="Create a pending agent and its one-time enrolment token",
    body={
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 64}},
        "required": ["name"],
    },
    responses={
        201: "the agent with token and install_command (shown once; pinned to the UI key when this server "
        "serves HTTPS: https_pin), install_command_plain when the certificate is publicly trusted"
    },
)
async def create_agent(request: web.Request) -> web.Response:
    user = current_user(request)
    # Checked before the body is read too, so a caller without the right learns nothing from its errors.
    access.require_global(user, access.AGENTS_MANAGE)
    body = await json_body(request)
    name = field_str(body, "name", max_len=64)
    return web.json_response(await agents.create_pending(ctx(request), user, name), status=201)


@routes.route("GET", "/api/v1/agents", summary="List agents")
async def list_agents(request: web.Request) -> web.Response:
    return web.json_response({"items": await agents.views(ctx(request), current_user(request))})


@routes.route("GET", "/api/v1/agents/{id}", summary="One agent", responses={200: "the agent", 404: "unknown"})
async def get_agent(request: web.Request) -> web.Response:
    c = ctx(request)
    record = await agents.get_record(c, current_user(request), request.match_info["id"])
    return web.json_response(agents.agent_view(c, record))


@routes.route("POST", "/api/v1/agents/{id}/revoke", summary="Revoke an agent; its live link is cut at once")
async def revoke_agent(request: web.Request) -> web.Response:
    c = ctx(request)
    record = await agents.revoke(c, current_user(request), request.match_info["id"])
    return web.json_response(agents.agent_view(c, record))


@routes.route(
    "POST",
    "/api/v1/agents/{id}/rotate-token",
    summary="Issue a new enrolment token; the old certificate stops working",
    responses={200: "token, expiry, install_command, install_command_plain, https_pin"},
)
async def rotate_token(request: web.Request) -> web.Response:
    _record, enrolment = await agents.rotate(ctx(request), current_user(request), request.match_info["id"])
    return web.json_response(enrolment)
