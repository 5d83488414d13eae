"""Volumes, networks, images: create, remove, pull (NDJSON progress), prune; per host or over a selection."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import DRIVER_PATTERN, IMAGE_PATTERN, NAME_PATTERN, check
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError, json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access, pulls
from dockmesh.server.services import objects as service

routes = RouteTable("objects")

HOST = "/api/v1/hosts/{host}"
_NAME = re.compile(NAME_PATTERN)
_IMAGE = re.compile(IMAGE_PATTERN)

_NAME_FIELD = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "description": "2 to 255 letters, digits, '_', '.', '-', starting with a letter or digit",
}
VOLUME_BODY = {
    "type": "object",
    "properties": {
        "name": _NAME_FIELD,
        "driver": {"type": "string", "pattern": DRIVER_PATTERN, "default": "local"},
    },
    "required": ["name"],
    "additionalProperties": False,
}
NETWORK_BODY = {
    "type": "object",
    "properties": {
        "name": _NAME_FIELD,
        "driver": {"type": "string", "pattern": DRIVER_PATTERN, "default": "bridge"},
        "internal": {"type": "boolean", "default": False, "description": "no route outside the host"},
    },
    "required": ["name"],
    "additionalProperties": False,
}
PULL_BODY = {
    "type": "object",
    "properties": {
        "image": {
            "type": "string",
            "pattern": IMAGE_PATTERN,
            "description": "an image reference such as registry:5000/app:1",
        }
    },
    "required": ["image"],
    "additionalProperties": False,
}
PRUNE_BODY = {
    "type": "object",
    "properties": {"dry_run": {"type": "boolean", "description": "list what would go; remove nothing"}},
    "required": ["dry_run"],
    "additionalProperties": False,
}
IMAGE_PRUNE_BODY = {
    **PRUNE_BODY,
    "properties": {
        **PRUNE_BODY["properties"],  # type: ignore[dict-item]
        "mode": {
            "enum": ["unused", "dangling"],
            "default": "unused",
            "description": "unused: no container uses it (docker image prune -a); dangling: untagged, unused",
        },
    },
}
PULL_LINES = (
    "NDJSON: {type: progress, host, id, status, current, total, pulled, size} lines, "
    "then one {type: result, ...} or {type: error, code, message} line"
)


def _path_name(request: web.Request, key: str, kind: str) -> str:
    value = request.match_info[key]
    if not _NAME.fullmatch(value):
        raise ApiError(400, "invalid_name", f"{value!r} is not a {kind} name: {_NAME_FIELD['description']}")
    return value


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    return check(await json_body(request, 64 * 1024), schema)


@routes.route(
    "POST",
    f"{HOST}/volumes",
    summary="Create a volume on a host",
    body=VOLUME_BODY,
    responses={201: "the volume row, with its host"},
)
async def volume_create(request: web.Request) -> web.Response:
    body = await _body(request, VOLUME_BODY)
    row = await service.create_volume(
        ctx(request),
        current_user(request),
        request.match_info["host"],
        body["name"],
        body.get("driver", "local"),
    )
    return web.json_response(row, status=201)


@routes.route("DELETE", f"{HOST}/volumes/{{name}}", summary="Remove a volume (409 in_use while mounted)")
async def volume_remove(request: web.Request) -> web.Response:
    name = _path_name(request, "name", "volume")
    await service.remove_volume(ctx(request), current_user(request), request.match_info["host"], name)
    return web.json_response({"ok": True})


@routes.route(
    "POST",
    f"{HOST}/networks",
    summary="Create a network on a host (bridge by default)",
    body=NETWORK_BODY,
    responses={201: "the network row, with its host"},
)
async def network_create(request: web.Request) -> web.Response:
    body = await _body(request, NETWORK_BODY)
    row = await service.create_network(
        ctx(request),
        current_user(request),
        request.match_info["host"],
        body["name"],
        body.get("driver", "bridge"),
        body.get("internal", False),
    )
    return web.json_response(row, status=201)


@routes.route(
    "DELETE", f"{HOST}/networks/{{id}}", summary="Remove a network by id or name (409 in_use with containers)"
)
async def network_remove(request: web.Request) -> web.Response:
    ref = _path_name(request, "id", "network")
    await service.remove_network(ctx(request), current_user(request), request.match_info["host"], ref)
    return web.json_response({"ok": True})


@routes.route(
    "DELETE",
    f"{HOST}/images/{{image:.+}}",
    summary="Remove an image by id or reference (409 in_use unless ?force=1)",
    query=("force",),
)
async def image_remove(request: web.Request) -> web.Response:
    ref = request.match_info["image"]
    if not _IMAGE.fullmatch(ref) or ".." in ref or "//" in ref:
        raise ApiError(400, "invalid_image", f"{ref!r} is not an image id or reference")
    await service.remove_image(
        ctx(request), current_user(request), request.match_info["host"], ref, _flag(request, "force")
    )
    return web.json_response({"ok": True})


async def _ndjson(request: web.Request, lines: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for line in lines:
        await response.write(orjson.dumps(line) + b"\n")
    await response.write_eof()
    return response


@routes.route(
    "POST",
    f"{HOST}/images/pull",
    summary="Pull an image on a host",
    body=PULL_BODY,
    responses={200: PULL_LINES},
)
async def image_pull(request: web.Request) -> web.StreamResponse:
    body = await _body(request, PULL_BODY)
    pull = await pulls.start_pull(
        ctx(request), current_user(request), request.match_info["host"], body["image"]
    )
    async with contextlib.aclosing(pull.lines()) as lines:
        return await _ndjson(request, lines)


@routes.route(
    "POST",
    "/api/v1/images/pull",
    summary="Pull an image on every selected host",
    body=PULL_BODY,
    query=("host",),
    responses={200: PULL_LINES + "; the result line has items (each host's image) and hosts (outcomes)"},
)
async def images_pull(request: web.Request) -> web.StreamResponse:
    body = await _body(request, PULL_BODY)
    selector = request.query.get("host", "all")
    c, user = ctx(request), current_user(request)
    await c.directory.select(
        selector, user, access.CONTAINERS_MANAGE
    )  # a bad selector is a 400/404 before the stream starts
    async with contextlib.aclosing(pulls.pull_many(c, user, selector, body["image"])) as lines:
        return await _ndjson(request, lines)


def _pruner(kind: str, schema: dict[str, Any]) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = await _body(request, schema)
        result = await service.prune(
            ctx(request),
            current_user(request),
            kind,
            request.query.get("host", "all"),
            dry_run=body["dry_run"],
            mode=body.get("mode", "unused"),
        )
        return web.json_response(result)

    handler.__name__ = f"{kind}_prune"
    return handler


for _kind, _schema in (("images", IMAGE_PRUNE_BODY), ("volumes", PRUNE_BODY)):
    routes.route(
        "POST",
        f"/api/v1/{_kind}/prune",
        summary=f"Prune unused {_kind} on the selected hosts; dry_run lists exactly what a prune removes",
        body=_schema,
        query=("host",),
        responses={200: "{dry_run, results: [{host, items, reclaimed, failed}], reclaimed, hosts}"},
    )(_pruner(_kind, _schema))
