"""Registry credentials: list, add, get, update, remove. The password goes in and never comes out."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.bodies import check
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError, json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.registries import MAX_PASSWORD, MAX_USERNAME, check_password, view

routes = RouteTable("registries")

_FIELDS: dict[str, Any] = {
    "url": {
        "type": "string",
        "maxLength": 300,
        "description": "the registry: host[:port][/path], e.g. ghcr.io/acme or registry.example:5000",
    },
    "username": {"type": "string", "minLength": 1, "maxLength": MAX_USERNAME},
    "password": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PASSWORD,
        "writeOnly": True,
        "description": "stored encrypted; never returned",
    },
    "scope": {
        "type": "string",
        "maxLength": 512,
        "description": "a host selector (e.g. 'prod and not eu'); empty = every host",
    },
}
ADD_BODY = {
    "type": "object",
    "properties": _FIELDS,
    "required": ["url", "username", "password"],
    "additionalProperties": False,
}
UPDATE_BODY = {"type": "object", "properties": _FIELDS, "additionalProperties": False, "minProperties": 1}


async def _body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    # Who may ask comes before what was asked: a refused caller learns nothing from validation errors.
    access.check_permission(current_user(request), access.REGISTRIES_MANAGE)
    body = await json_body(request, 64 * 1024)
    if "password" in body:
        # Checked here first, with a message that never quotes the value (the schema's would).
        check_password(body["password"])
        check({**body, "password": "x"}, schema)
    else:
        check(body, schema)
    return body


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(404, "credential_not_found", f"no registry credential {raw[:40]!r}")
    return int(raw)


@routes.route("GET", "/api/v1/registries", summary="Registry credentials (never their passwords)")
async def list_registries(request: web.Request) -> web.Response:
    records = await ctx(request).registries.list(current_user(request))
    return web.json_response({"items": [view(r) for r in records]})


@routes.route(
    "POST",
    "/api/v1/registries",
    summary="Add a registry credential, scoped to the hosts its selector matches",
    body=ADD_BODY,
    responses={201: "the credential, without its password"},
)
async def add_registry(request: web.Request) -> web.Response:
    body = await _body(request, ADD_BODY)
    record = await ctx(request).registries.add(
        current_user(request), body["url"], body["username"], body["password"], body.get("scope")
    )
    return web.json_response(view(record), status=201)


@routes.route("GET", "/api/v1/registries/{id}", summary="One registry credential (never its password)")
async def get_registry(request: web.Request) -> web.Response:
    record = await ctx(request).registries.get(current_user(request), _id(request))
    return web.json_response(view(record))


@routes.route(
    "PATCH",
    "/api/v1/registries/{id}",
    summary="Change a credential's url, username, password or scope (fields left out stay)",
    body=UPDATE_BODY,
)
async def update_registry(request: web.Request) -> web.Response:
    credential_id = _id(request)
    body = await _body(request, UPDATE_BODY)
    record = await ctx(request).registries.update(current_user(request), credential_id, body)
    return web.json_response(view(record))


@routes.route("DELETE", "/api/v1/registries/{id}", summary="Remove a registry credential")
async def delete_registry(request: web.Request) -> web.Response:
    await ctx(request).registries.delete(current_user(request), _id(request))
    return web.json_response({"ok": True})
