"""Stack migrations over HTTP: thin handlers over `services.migrations` (docs/migration.md)."""

from __future__ import annotations

import contextlib

import orjson
from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import validated_body
from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable

routes = RouteTable("migrations")
NDJSON = {"Content-Type": "application/x-ndjson", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}

TARGET = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "maxLength": 128, "description": "the destination host's id"},
        "from": {
            "type": "string",
            "maxLength": 128,
            "description": "the source host's id; needed only when the stack is on more than one host",
        },
    },
    "required": ["host"],
    "additionalProperties": False,
}


async def _target(request: web.Request) -> tuple[str, str, str]:
    body = await validated_body(request, TARGET)
    name = request.match_info["name"]
    source = await ctx(request).migrations.source_of(current_user(request), name, body.get("from"))
    return name, source, body["host"]


@routes.route(
    "POST",
    "/api/v1/stacks/{name}/migrate",
    summary="Move the stack with its volumes to another host; follow /api/v1/migrations/{id}/events",
    body=TARGET,
    responses={202: "{id}", 409: "preflight_failed (with problems)", 400: "invalid_from"},
)
async def migrate(request: web.Request) -> web.Response:
    name, source, destination = await _target(request)
    record = await ctx(request).migrations.start(current_user(request), name, source, destination)
    return web.json_response({"id": record.id, **record.view()}, status=202)


@routes.route(
    "POST",
    "/api/v1/stacks/{name}/migrate/preflight",
    summary="The migration's pre-flight only: problems, warnings, volume and memory sizes",
    body=TARGET,
)
async def migrate_preflight(request: web.Request) -> web.Response:
    name, source, destination = await _target(request)
    pf = await ctx(request).migrations.preflight(current_user(request), name, source, destination)
    return web.json_response(pf.view())


@routes.route("GET", "/api/v1/migrations/{id}", summary="A migration: state, phase, bytes, volumes, reason")
async def get_migration(request: web.Request) -> web.Response:
    record = await ctx(request).migrations.get(current_user(request), request.match_info["id"])
    return web.json_response(record.view())


@routes.route(
    "GET",
    "/api/v1/migrations/{id}/events",
    summary="The migration as NDJSON snapshots on every change, ending with the final one",
)
async def migration_events(request: web.Request) -> web.StreamResponse:
    service = ctx(request).migrations
    record = await service.get(current_user(request), request.match_info["id"])
    response = web.StreamResponse(headers=NDJSON)
    await response.prepare(request)
    async with contextlib.aclosing(service.follow(record.id)) as stream:
        async for snapshot in stream:
            await response.write(orjson.dumps(snapshot.view()) + b"\n")
    await response.write_eof()
    return response
