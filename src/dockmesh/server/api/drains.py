"""Drains over HTTP: thin handlers over `services.drains` (docs/drains.md)."""

from __future__ import annotations

import contextlib

import orjson
from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import validated_body
from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.drainrun import MAX_CONCURRENCY
from dockmesh.server.services.drains import DrainRequest
from dockmesh.server.services.drainview import record_view

routes = RouteTable("drains")
NDJSON = {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_ITEM = {"type": "string", "minLength": 1, "maxLength": 512}

DRAIN = {
    "type": "object",
    "properties": {
        "destinations": {
            "description": "where the stacks may go: a host selector, or a list of host ids/names/selectors "
            "(any of them)",
            "oneOf": [_ITEM, {"type": "array", "items": _ITEM, "minItems": 1, "maxItems": 50}],
        },
        "order": {"enum": ["smallest", "largest", "deps"], "default": "smallest"},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY, "default": 1},
    },
    "required": ["destinations"],
    "additionalProperties": False,
}


@routes.route(
    "POST",
    "/api/v1/hosts/{id}/drain",
    summary="Cordon the host and move all its stacks to the destinations; ?dry_run=true shows the plan only",
    body=DRAIN,
    query=("dry_run",),
    responses={
        202: "{id, …the drain view}",
        200: "the plan (dry run): stacks in order, each with a destination or a skip reason",
        409: "drain_running or not_cordonable",
    },
)
async def drain_host(request: web.Request) -> web.Response:
    c, caller = ctx(request), current_user(request)
    source = request.match_info["id"]
    await c.drains.check_source(caller, source)  # the caller's rights before the body: 404/403 first
    body = await validated_body(request, DRAIN)
    drain_request = DrainRequest(
        source,
        c.drains.selector_of(body["destinations"]),
        body.get("order", "smallest"),
        body.get("concurrency", 1),
    )
    if request.query.get("dry_run", "").lower() in ("1", "true", "yes"):
        return web.json_response(await c.drains.dry_run(caller, drain_request))
    drain = await c.drains.start(caller, drain_request)
    return web.json_response(await c.drains.get(caller, drain.id), status=202)


@routes.route("GET", "/api/v1/hosts/{id}/drains", summary="The host's recent drains, newest first")
async def host_drains(request: web.Request) -> web.Response:
    items = await ctx(request).drains.recent(current_user(request), request.match_info["id"])
    return web.json_response({"items": [record_view(d) for d in items]})


@routes.route(
    "GET",
    "/api/v1/drains/{id}",
    summary="A drain: status (running·done·failed), each stack's destination and outcome, bytes, time left",
)
async def get_drain(request: web.Request) -> web.Response:
    return web.json_response(await ctx(request).drains.get(current_user(request), request.match_info["id"]))


@routes.route(
    "GET",
    "/api/v1/drains/{id}/events",
    summary="The drain's view as NDJSON on every change (at least each second), ending with the final one",
)
async def drain_events(request: web.Request) -> web.StreamResponse:
    views = ctx(request).drains.follow(current_user(request), request.match_info["id"])
    first = await anext(views)  # a 404 is answered as JSON, before the stream begins
    response = web.StreamResponse(headers=NDJSON)
    await response.prepare(request)
    async with contextlib.aclosing(views) as stream:
        await response.write(orjson.dumps(first) + b"\n")
        async for view in stream:
            await response.write(orjson.dumps(view) + b"\n")
    await response.write_eof()
    return response
