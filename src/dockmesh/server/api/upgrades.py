"""Agent upgrades: the fleet's versions and per-host state, the policy, and starting one host's upgrade."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import check
from dockmesh.server.context import ctx
from dockmesh.server.errors import json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.rollouts import DEFAULT_WAVE_TIMEOUT, WAVE_TIMEOUT_RANGE
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


ROLLOUT_BODY = {
    "type": "object",
    "properties": {
        "hosts": {"type": "string", "maxLength": 512},
        "waves": {
            "type": "array",
            "items": {"type": "string", "maxLength": 512},
            "minItems": 1,
            "maxItems": 10,
        },
        "max_failure_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "wave_timeout": {
            "type": "number",
            "minimum": WAVE_TIMEOUT_RANGE[0],
            "maximum": WAVE_TIMEOUT_RANGE[1],
        },
    },
    "required": ["waves"],
    "additionalProperties": False,
}


@routes.route(
    "POST",
    "/api/v1/upgrades/rollouts",
    summary="Start a rollout of this server's agent build in waves (agents.manage; policy must be manual)",
    body=ROLLOUT_BODY,
    responses={201: "the rollout and its plan", 409: "policy automatic, a rollout running, or no artifact"},
)
async def start_rollout(request: web.Request) -> web.Response:
    user = current_user(request)
    access.require_any(user, access.AGENTS_MANAGE)  # who may ask (on some hosts), before what was asked
    body = await json_body(request, 16384)
    check(body, ROLLOUT_BODY)
    result = await ctx(request).rollouts.start(
        user,
        list(body["waves"]),
        hosts=str(body.get("hosts") or "all"),
        max_failure_rate=float(body.get("max_failure_rate", 0.0)),
        wave_timeout=float(body.get("wave_timeout", DEFAULT_WAVE_TIMEOUT)),
    )
    return web.json_response(result, status=201)


@routes.route("GET", "/api/v1/upgrades/rollouts", summary="Rollouts, newest first (hosts filtered by scope)")
async def list_rollouts(request: web.Request) -> web.Response:
    return web.json_response({"items": await ctx(request).rollouts.recent(current_user(request))})


@routes.route(
    "GET",
    "/api/v1/upgrades/rollouts/{id}",
    summary="One rollout: per wave its hosts with their state, counts",
)
async def get_rollout(request: web.Request) -> web.Response:
    return web.json_response(await ctx(request).rollouts.get(current_user(request), request.match_info["id"]))


@routes.route(
    "POST",
    "/api/v1/upgrades/rollouts/{id}/cancel",
    summary="Halt a running rollout (agents.manage): nothing more is offered",
    responses={409: "the rollout is not running"},
)
async def cancel_rollout(request: web.Request) -> web.Response:
    user = current_user(request)
    return web.json_response(await ctx(request).rollouts.cancel(user, request.match_info["id"]))
