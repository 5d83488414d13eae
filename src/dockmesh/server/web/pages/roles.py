"""Roles (administrators only): the list, create and edit (permissions, scope with a live preview), delete.

Built-in roles are shown read-only. Every read and write goes through `services/users.py`, which checks
`users.manage`; a caller without it gets the service's 403 as the page's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access, scopes
from dockmesh.server.services.users import role_view
from dockmesh.server.web.render import (
    PageError,
    Session,
    render,
    require_session,
    see_other,
    session_form,
)

routes = RouteTable("web")

MAX_SCOPE_FIELD = 4096  # the selector's own bound is smaller; this only caps what is echoed back


def page_error(exc: ApiError) -> PageError:
    titles = {403: "Not allowed", 404: "Not found", 409: "Refused"}
    return PageError(exc.status, titles.get(exc.status, "Error"), exc.message)


def _draft(form: Mapping[str, Any]) -> dict[str, Any]:
    perms = [p for p in form.getall("permissions", []) if isinstance(p, str)]  # type: ignore[attr-defined]
    return {
        "name": str(form.get("name", "")).strip(),
        "permissions": perms,
        "scope": str(form.get("scope", ""))[:MAX_SCOPE_FIELD],
        "builtin": False,
    }


async def _form_page(
    request: web.Request,
    session: Session,
    role: dict[str, Any],
    *,
    new: bool,
    error: str = "",
    status: int = 200,
) -> web.Response:
    c = ctx(request)
    try:
        preview = await scopes.preview(session.user, c.directory, role["scope"])
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "role_form.html",
        {
            "title": "New role" if new else f"Role {role['name']}",
            "role": role,
            "new": new,
            "error": error,
            "preview": preview,
            "permissions": access.PERMISSIONS,
        },
        session=session,
        active="roles",
        status=status,
    )


@routes.route("GET", "/roles", summary="Roles page: permissions and host scope of each role", auth=False)
async def roles_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    try:
        roles = await ctx(request).users_service.roles(session.user)
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "roles.html",
        {"title": "Roles", "roles": [role_view(r) for r in roles]},
        session=session,
        active="roles",
    )


@routes.route("GET", "/roles/new", summary="New role form", auth=False)
async def new_role_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    access_denied = not access.has_global(session.user, access.USERS_MANAGE)
    if access_denied:
        raise PageError(403, "Not allowed", "This needs the 'users.manage' permission on every host.")
    blank = {"name": "", "permissions": [access.HOSTS_VIEW], "scope": "", "builtin": False}
    return await _form_page(request, session, blank, new=True)


@routes.route(
    "POST",
    "/roles/new",
    summary="Create a role from the form",
    auth=False,
    responses={303: "to the roles page", 400: "the form again, with the error"},
)
async def new_role_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    draft = _draft(form)
    try:
        await ctx(request).users_service.create_role(
            session.user, draft["name"], draft["permissions"], draft["scope"]
        )
    except ApiError as exc:
        if exc.status in (403, 404):
            raise page_error(exc) from None
        return await _form_page(request, session, draft, new=True, error=exc.message, status=exc.status)
    return see_other(f"/roles?saved={draft['name']}")


@routes.route(
    "GET",
    "/roles/preview",
    summary="Scope preview (HTML part): the parse error with its position, or the hosts matched now",
    auth=False,
    query=("scope",),
)
async def scope_preview(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    text = request.query.get("scope", "")[:MAX_SCOPE_FIELD]
    try:
        preview = await scopes.preview(session.user, ctx(request).directory, text)
    except ApiError as exc:
        raise page_error(exc) from None
    return render(request, "_scope_preview.html", {"preview": preview}, session=session, no_store=True)


@routes.route(
    "GET", "/roles/{name}", summary="Role page: edit a custom role; built-in ones read-only", auth=False
)
async def role_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    try:
        role = await ctx(request).users_service.role(session.user, request.match_info["name"])
    except ApiError as exc:
        raise page_error(exc) from None
    return await _form_page(request, session, role_view(role), new=False)


@routes.route(
    "POST",
    "/roles/{name}",
    summary="Save a custom role's permissions and scope",
    auth=False,
    responses={303: "to the roles page", 400: "the form again, with the error"},
)
async def role_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    name = request.match_info["name"]
    draft = {**_draft(form), "name": name}
    try:
        await ctx(request).users_service.update_role(session.user, name, draft["permissions"], draft["scope"])
    except ApiError as exc:
        if exc.status in (403, 404) or exc.code == "builtin_role":
            raise page_error(exc) from None
        return await _form_page(request, session, draft, new=False, error=exc.message, status=exc.status)
    return see_other(f"/roles?saved={name}")


@routes.route(
    "POST", "/roles/{name}/delete", summary="Delete a custom role", auth=False, responses={303: "to the list"}
)
async def role_delete(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    try:
        await ctx(request).users_service.delete_role(session.user, request.match_info["name"])
    except ApiError as exc:
        raise page_error(exc) from None
    return see_other("/roles")
