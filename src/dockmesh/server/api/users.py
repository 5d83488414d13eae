"""Users, roles, script tokens and a user's effective access (RBAC, issue 11); all need `users.manage`."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError, json_body
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.users import UserService, role_view, token_view, user_view

routes = RouteTable("users")

_ROLE_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "permissions": {"type": "array", "items": {"type": "string", "enum": list(access.PERMISSIONS)}},
        "scope": {"type": "string", "description": "host selector; empty or absent = every host"},
    },
    "required": ["name", "permissions"],
}
_USER_BODY = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["username", "password"],
}
_USER_PATCH = {
    "type": "object",
    "properties": {"password": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}}},
}
_TOKEN_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
        "ttl_s": {"type": "integer"},
    },
    "required": ["name"],
}


def _service(request: web.Request) -> UserService:
    return ctx(request).users_service


def _user_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(404, "user_not_found", f"no user with id {raw[:20]!r}")
    return int(raw)


@routes.route("GET", "/api/v1/roles", summary="Every role (built-in and custom)")
async def list_roles(request: web.Request) -> web.Response:
    items = await _service(request).roles(current_user(request))
    return web.json_response({"items": [role_view(r) for r in items]})


@routes.route("POST", "/api/v1/roles", summary="Create a role", body=_ROLE_BODY, responses={201: "the role"})
async def create_role(request: web.Request) -> web.Response:
    body = await json_body(request)
    role = await _service(request).create_role(
        current_user(request), body.get("name"), body.get("permissions"), body.get("scope")
    )
    return web.json_response(role_view(role), status=201)


@routes.route("GET", "/api/v1/roles/{name}", summary="One role")
async def get_role(request: web.Request) -> web.Response:
    role = await _service(request).role(current_user(request), request.match_info["name"])
    return web.json_response(role_view(role))


@routes.route(
    "PATCH",
    "/api/v1/roles/{name}",
    summary="Change a custom role's permissions or scope",
    body={"type": "object", "properties": {k: _ROLE_BODY["properties"][k] for k in ("permissions", "scope")}},  # type: ignore[index]
)
async def update_role(request: web.Request) -> web.Response:
    body = await json_body(request)
    role = await _service(request).update_role(
        current_user(request), request.match_info["name"], body.get("permissions"), body.get("scope")
    )
    return web.json_response(role_view(role))


@routes.route("DELETE", "/api/v1/roles/{name}", summary="Delete a custom role", responses={204: "deleted"})
async def delete_role(request: web.Request) -> web.Response:
    await _service(request).delete_role(current_user(request), request.match_info["name"])
    return web.Response(status=204)


@routes.route("GET", "/api/v1/users", summary="Every user with their roles")
async def list_users(request: web.Request) -> web.Response:
    items = await _service(request).users(current_user(request))
    return web.json_response({"items": [user_view(u) for u in items]})


@routes.route("POST", "/api/v1/users", summary="Create a user", body=_USER_BODY, responses={201: "the user"})
async def create_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await _service(request).create_user(
        current_user(request), body.get("username"), body.get("password"), body.get("roles")
    )
    return web.json_response(user_view(user), status=201)


@routes.route("GET", "/api/v1/users/{id}", summary="One user")
async def get_user(request: web.Request) -> web.Response:
    user = await _service(request).user(current_user(request), _user_id(request))
    return web.json_response(user_view(user))


@routes.route("PATCH", "/api/v1/users/{id}", summary="Change a user's password or roles", body=_USER_PATCH)
async def update_user(request: web.Request) -> web.Response:
    body = await json_body(request)
    user = await _service(request).update_user(
        current_user(request), _user_id(request), body.get("password"), body.get("roles")
    )
    return web.json_response(user_view(user))


@routes.route(
    "DELETE",
    "/api/v1/users/{id}",
    summary="Delete a user (not the last administrator)",
    responses={204: "deleted", 409: "the last administrator"},
)
async def delete_user(request: web.Request) -> web.Response:
    await _service(request).delete_user(current_user(request), _user_id(request))
    return web.Response(status=204)


@routes.route("GET", "/api/v1/users/{id}/access", summary="Effective access: hosts and permissions on each")
async def user_access(request: web.Request) -> web.Response:
    return web.json_response(await _service(request).access(current_user(request), _user_id(request)))


@routes.route("GET", "/api/v1/users/{id}/tokens", summary="A user's script tokens (never the secret)")
async def list_tokens(request: web.Request) -> web.Response:
    items = await _service(request).tokens(current_user(request), _user_id(request))
    return web.json_response({"items": [token_view(t) for t in items]})


@routes.route(
    "POST",
    "/api/v1/users/{id}/tokens",
    summary="Create a script token (the secret is shown once)",
    body=_TOKEN_BODY,
    responses={201: "{token, id, name, roles, expires_at}"},
)
async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    made = await _service(request).create_token(
        current_user(request), _user_id(request), body.get("name"), body.get("roles"), body.get("ttl_s")
    )
    return web.json_response({"token": made.token, **token_view(made.record)}, status=201)


@routes.route(
    "DELETE", "/api/v1/users/{id}/tokens/{token}", summary="Revoke a script token", responses={204: "revoked"}
)
async def delete_token(request: web.Request) -> web.Response:
    await _service(request).delete_token(
        current_user(request), _user_id(request), request.match_info["token"]
    )
    return web.Response(status=204)
