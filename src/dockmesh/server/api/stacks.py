"""Stacks and deploys over HTTP: thin handlers over `services.stacks` (which checks and decides)."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import validated_body
from dockmesh.server.context import ctx
from dockmesh.server.fanout import parse_deadline
from dockmesh.server.query import bounded_int
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.stacks import MAX_TEXT, StackService
from dockmesh.store.stacks import Deployment, Revision, StackRecord

routes = RouteTable("stacks")

BASE = "/api/v1/stacks/{name}"
# JSON escapes (a newline is two bytes) make the body larger than the texts it carries; the texts
# themselves are held to MAX_TEXT by the service, this only keeps a runaway body from being read.
BODY_LIMIT = 2 * MAX_TEXT + 64 * 1024
MAX_TAIL = 1_000_000

SAVE = {
    "type": "object",
    "properties": {
        "compose": {"type": "string", "description": "the text of compose.yaml"},
        "env": {"type": "string", "description": "the text of .env (optional)"},
        "allow_privileged": {"type": "boolean", "description": "administrators only"},
    },
    "required": ["compose"],
    "additionalProperties": False,
}
HOST = {
    "type": "object",
    "properties": {"host": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["host"],
    "additionalProperties": False,
}


def _service(request: web.Request) -> StackService:
    return ctx(request).stacks


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def record_json(record: StackRecord) -> dict[str, Any]:
    return asdict(record)


def revision_json(revision: Revision, *, text: bool) -> dict[str, Any]:
    row = asdict(revision)
    if not text:
        del row["compose"], row["env"]
    return row


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return asdict(deployment)


@routes.route(
    "GET",
    "/api/v1/stacks",
    summary="Stacks across hosts: engines' stacks (external when no record) merged with the records",
    query=("host", "timeout"),
    responses={200: "{items, hosts, records}: rows with host, external, revision, deploy_state"},
)
async def list_stacks(request: web.Request) -> web.Response:
    result = await _service(request).list(
        current_user(request), request.query.get("host", "all"), parse_deadline(request.query.get("timeout"))
    )
    body = {
        "items": result.items,
        "hosts": [o.to_dict() for o in result.hosts],
        "records": [record_json(r) for r in result.records],
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@routes.route(
    "PUT",
    BASE,
    summary="Create or update a stack (validated; every change keeps the previous revision)",
    body=SAVE,
    responses={
        200: "{name, revision, changed, allow_privileged}",
        400: "{error: {code, message, key, line}}: invalid name or compose",
        413: "compose.yaml and .env over 1 MiB",
    },
)
async def save_stack(request: web.Request) -> web.Response:
    body = await validated_body(request, SAVE, BODY_LIMIT)
    record, changed = await _service(request).save(
        current_user(request),
        request.match_info["name"],
        body["compose"],
        body.get("env", ""),
        body.get("allow_privileged"),
    )
    return web.json_response({**record_json(record), "changed": changed})


@routes.route("GET", BASE, summary="A stack: record, current compose and env, placements, deploy history")
async def get_stack(request: web.Request) -> web.Response:
    detail = await _service(request).detail(current_user(request), request.match_info["name"])
    return web.json_response(
        {
            **record_json(detail.record),
            "compose": detail.current.compose,
            "env": detail.current.env,
            "hosts": [asdict(p) for p in detail.placements],
            "deployments": [deployment_json(d) for d in detail.deployments],
        }
    )


@routes.route(
    "DELETE",
    BASE,
    summary="With host: down on that host (volumes only with volumes=1); without: delete the record",
    query=("host", "volumes"),
    responses={200: "{ok}", 409: "the record is still deployed somewhere"},
)
async def delete_stack(request: web.Request) -> web.Response:
    service, user, name = _service(request), current_user(request), request.match_info["name"]
    host = request.query.get("host")
    if host:
        await service.remove(user, name, host, volumes=_flag(request, "volumes"))
    else:
        await service.delete(user, name)
    return web.json_response({"ok": True})


@routes.route("GET", f"{BASE}/revisions", summary="The stack's revisions, newest first, with their diffs")
async def stack_revisions(request: web.Request) -> web.Response:
    items = await _service(request).revisions(current_user(request), request.match_info["name"])
    return web.json_response({"items": [revision_json(r, text=False) for r in items]})


@routes.route("GET", f"{BASE}/revisions/{{number}}", summary="One revision: compose, env and its diff")
async def stack_revision(request: web.Request) -> web.Response:
    number = bounded_int(request.match_info["number"], "number", 1, 1_000_000_000)
    assert number is not None
    item = await _service(request).revision(current_user(request), request.match_info["name"], number)
    return web.json_response(revision_json(item, text=True))


@routes.route(
    "POST",
    f"{BASE}/deploy",
    summary="Deploy the current revision to one host; runs on the server, follow /api/v1/deploys/{id}/events",
    body=HOST,
    responses={
        202: "{id, state, revision, host}",
        409: "host_cordoned or deploy_in_progress",
        503: "host_offline",
    },
)
async def deploy_stack(request: web.Request) -> web.Response:
    body = await validated_body(request, HOST)
    d = await _service(request).deploy(current_user(request), request.match_info["name"], body["host"])
    return web.json_response(
        {"id": d.id, "state": d.state, "revision": d.revision, "host": d.host, "stack": d.stack}, status=202
    )


def _action(action: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = await validated_body(request, HOST)
        await _service(request).action(
            current_user(request), request.match_info["name"], body["host"], action
        )
        return web.json_response({"ok": True, "action": action})

    handler.__name__ = f"stack_{action}"
    return handler


for _name in ("stop", "start"):
    routes.route("POST", f"{BASE}/{_name}", summary=f"{_name.capitalize()} the stack on one host", body=HOST)(
        _action(_name)
    )


@routes.route(
    "GET",
    f"{BASE}/logs",
    summary="Logs of all the stack's services on one host, merged, each line prefixed with its service",
    query=("host", "follow", "tail"),
)
async def stack_logs(request: web.Request) -> web.StreamResponse:
    lines = await _service(request).logs(
        current_user(request),
        request.match_info["name"],
        request.query.get("host", ""),
        follow=_flag(request, "follow"),
        tail=bounded_int(request.query.get("tail"), "tail", 0, MAX_TAIL),
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async with contextlib.aclosing(lines) as merged:
        async for line in merged:
            await response.write(line)
    await response.write_eof()
    return response


@routes.route(
    "GET", "/api/v1/deploys/{id}", summary="A deploy: stack, host, revision, state, services, error"
)
async def get_deploy(request: web.Request) -> web.Response:
    d = await _service(request).deployment(current_user(request), request.match_info["id"])
    return web.json_response(deployment_json(d))


@routes.route(
    "GET",
    "/api/v1/deploys/{id}/events",
    summary="The deploy's events as NDJSON: those so far, then live ones until the result",
    responses={200: "one JSON object per line: state, progress, gap, then result"},
)
async def deploy_events(request: web.Request) -> web.StreamResponse:
    events = await _service(request).events(current_user(request), request.match_info["id"])
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    async with contextlib.aclosing(events) as stream:
        async for event in stream:
            await response.write(orjson.dumps(event) + b"\n")
    await response.write_eof()
    return response


@routes.route(
    "POST",
    "/api/v1/deploys/{id}/cancel",
    summary="Cancel a running deploy (the host rolls back); the result arrives in its events",
    responses={200: "{ok}", 409: "deploy_finished"},
)
async def cancel_deploy(request: web.Request) -> web.Response:
    await _service(request).cancel(current_user(request), request.match_info["id"])
    return web.json_response({"ok": True})
