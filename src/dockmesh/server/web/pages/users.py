"""Users (administrators only): list, create, delete, roles, password reset, script tokens, effective access.

Every read and write goes through `services/users.py`, which checks `users.manage`; a caller without it
gets the service's 403 as the page's. A new token's secret is rendered once, on a page nothing caches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.users import DEFAULT_TOKEN_TTL, role_view, token_view, user_view
from dockmesh.server.web.pages.roles import page_error
from dockmesh.server.web.render import (
    PageError,
    Session,
    render,
    require_session,
    see_other,
    session_form,
)
from dockmesh.store.users import UserRecord

routes = RouteTable("web")

# Host-scoped permissions make the columns of the access table; the rest are global (listed apart).
HOST_PERMISSIONS = tuple(
    p for p in access.PERMISSIONS if p not in (access.USERS_MANAGE, access.REGISTRIES_MANAGE)
)


def _user_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise PageError(404, "Not found", f"There is no user with id {raw[:20]!r}.")
    return int(raw)


def _roles_of(form: Mapping[str, Any]) -> list[str]:
    return [r for r in form.getall("roles", []) if isinstance(r, str)]  # type: ignore[attr-defined]


async def _user(request: web.Request, session: Session) -> UserRecord:
    try:
        return await ctx(request).users_service.user(session.user, _user_id(request))
    except ApiError as exc:
        raise page_error(exc) from None


@routes.route("GET", "/users", summary="Users page: every user and their roles", auth=False)
async def users_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    try:
        users = await ctx(request).users_service.users(session.user)
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "users.html",
        {"title": "Users", "users": [user_view(u) for u in users]},
        session=session,
        active="users",
    )


async def _new_page(
    request: web.Request, session: Session, draft: dict[str, Any], error: str = "", status: int = 200
) -> web.Response:
    try:
        roles = await ctx(request).users_service.roles(session.user)
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "user_new.html",
        {"title": "New user", "draft": draft, "error": error, "roles": [role_view(r) for r in roles]},
        session=session,
        active="users",
        status=status,
    )


@routes.route("GET", "/users/new", summary="New user form", auth=False)
async def new_user_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    return await _new_page(request, session, {"username": "", "roles": []})


@routes.route(
    "POST",
    "/users/new",
    summary="Create a user from the form",
    auth=False,
    responses={303: "to the user's page", 400: "the form again, with the error"},
)
async def new_user_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    draft = {"username": str(form.get("username", "")).strip(), "roles": _roles_of(form)}
    try:
        user = await ctx(request).users_service.create_user(
            session.user, draft["username"], str(form.get("password", "")), draft["roles"]
        )
    except ApiError as exc:
        if exc.status == 403:
            raise page_error(exc) from None
        return await _new_page(request, session, draft, error=exc.message, status=exc.status)
    return see_other(f"/users/{user.id}")


async def _user_page(
    request: web.Request,
    session: Session,
    user: UserRecord,
    *,
    error: str = "",
    status: int = 200,
    new_token: dict[str, Any] | None = None,
) -> web.Response:
    service = ctx(request).users_service
    try:
        roles = await service.roles(session.user)
        tokens = await service.tokens(session.user, user.id)
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "user.html",
        {
            "title": f"User {user.username}",
            "account": user_view(user),
            "roles": [role_view(r) for r in roles],
            "tokens": [token_view(t) for t in tokens],
            "error": error,
            "saved": request.query.get("saved", ""),
            "new_token": new_token,
            "default_ttl_days": DEFAULT_TOKEN_TTL // 86400,
        },
        session=session,
        active="users",
        status=status,
        no_store=new_token is not None,  # the secret is shown once: never from a cache
    )


@routes.route("GET", "/users/{id}", summary="User page: roles, password, script tokens", auth=False)
async def user_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    return await _user_page(request, session, await _user(request, session))


async def _update(request: web.Request, **change: Any) -> web.StreamResponse:
    session, form = await session_form(request)
    user = await _user(request, session)
    values = {k: v(form) for k, v in change.items()}
    try:
        await ctx(request).users_service.update_user(session.user, user.id, **values)
    except ApiError as exc:
        if exc.status in (403, 404):
            raise page_error(exc) from None
        return await _user_page(request, session, user, error=exc.message, status=exc.status)
    return see_other(f"/users/{user.id}?saved={'+'.join(change)}")


@routes.route(
    "POST", "/users/{id}/roles", summary="Replace the user's roles", auth=False, responses={303: "back"}
)
async def roles_submit(request: web.Request) -> web.StreamResponse:
    return await _update(request, roles=_roles_of)


@routes.route(
    "POST",
    "/users/{id}/password",
    summary="Set a new password for the user",
    auth=False,
    responses={303: "back"},
)
async def password_submit(request: web.Request) -> web.StreamResponse:
    return await _update(request, password=lambda form: str(form.get("password", "")))


@routes.route(
    "POST", "/users/{id}/delete", summary="Delete the user", auth=False, responses={303: "to the list"}
)
async def user_delete_submit(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    user = await _user(request, session)
    try:
        await ctx(request).users_service.delete_user(session.user, user.id)
    except ApiError as exc:
        if exc.status in (403, 404):
            raise page_error(exc) from None
        return await _user_page(request, session, user, error=exc.message, status=exc.status)
    return see_other("/users")


@routes.route(
    "POST",
    "/users/{id}/tokens",
    summary="Create a script token for the user; shows its secret once",
    auth=False,
    responses={200: "the user's page with the secret"},
)
async def token_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    user = await _user(request, session)
    days = str(form.get("ttl_days", "")).strip()
    ttl: Any = int(days) * 86400 if days.isdigit() and len(days) <= 4 else days or None
    roles = _roles_of(form) or None  # none ticked: every role the user holds
    try:
        made = await ctx(request).users_service.create_token(
            session.user, user.id, str(form.get("name", "")).strip(), roles, ttl
        )
    except ApiError as exc:
        if exc.status in (403, 404):
            raise page_error(exc) from None
        message = "Expiry must be 1 to 366 days." if "ttl_s" in exc.message else exc.message
        return await _user_page(request, session, user, error=message, status=exc.status)
    shown = {"token": made.token, **token_view(made.record)}
    return await _user_page(request, session, user, new_token=shown)


@routes.route(
    "POST",
    "/users/{id}/tokens/{token}/revoke",
    summary="Revoke one of the user's script tokens",
    auth=False,
    responses={303: "back"},
)
async def token_revoke(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    user = await _user(request, session)
    try:
        await ctx(request).users_service.delete_token(session.user, user.id, request.match_info["token"])
    except ApiError as exc:
        raise page_error(exc) from None
    return see_other(f"/users/{user.id}?saved=revoked")


@routes.route(
    "GET",
    "/users/{id}/access",
    summary="Effective access: the hosts the user reaches and what on each",
    auth=False,
)
async def access_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    try:
        view = await ctx(request).users_service.access(session.user, _user_id(request))
    except ApiError as exc:
        raise page_error(exc) from None
    return render(
        request,
        "user_access.html",
        {
            "title": f"Access of {view['user']['username']}",
            "view": view,
            "columns": HOST_PERMISSIONS,
        },
        session=session,
        active="users",
    )
