"""Registries page: the credentials (never their passwords), add one, remove one. Administrators only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.errors import ServiceError
from dockmesh.server.services.registries import view
from dockmesh.server.web.render import (
    PageError,
    Session,
    render,
    require_global,
    require_session,
    see_other,
    session_form,
)

routes = RouteTable("web")


async def _page(
    request: web.Request,
    session: Session,
    form: dict[str, str] | None = None,
    error: str = "",
) -> web.Response:
    records = await ctx(request).registries.list(session.user)
    return render(
        request,
        "registries.html",
        {
            "title": "Registries",
            "credentials": [view(r) for r in records],
            # The form comes back after an error without its password: it is never rendered.
            "form": form or {"url": "", "username": "", "scope": ""},
            "error": error,
        },
        session=session,
        active="registries",
        no_store=True,
    )


@routes.route("GET", "/registries", summary="Registries page: credentials and their scopes", auth=False)
async def registries_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    require_global(session, access.REGISTRIES_MANAGE)
    return await _page(request, session)


@routes.route(
    "POST",
    "/registries",
    summary="Add a registry credential from the form",
    auth=False,
    responses={303: "back to the list", 200: "the form again, with the problem"},
)
async def registry_add_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    require_global(session, access.REGISTRIES_MANAGE)
    fields: dict[str, Any] = {k: str(form.get(k, "")) for k in ("url", "username", "password", "scope")}
    try:
        await ctx(request).registries.add(
            session.user, fields["url"].strip(), fields["username"], fields["password"], fields["scope"]
        )
    except ServiceError as exc:
        shown = {k: fields[k] for k in ("url", "username", "scope")}
        return await _page(request, session, shown, exc.message)  # 200, as the other forms answer
    return see_other("/registries")


@routes.route(
    "POST",
    "/registries/{id}/delete",
    summary="Remove a registry credential from the list",
    auth=False,
    responses={303: "back to the list"},
)
async def registry_delete_submit(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    require_global(session, access.REGISTRIES_MANAGE)
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 12:
        raise PageError(404, "No such credential", f"There is no registry credential {raw[:40]!r}.")
    try:
        await ctx(request).registries.delete(session.user, int(raw))
    except ServiceError as exc:
        raise PageError(exc.status, "Not removed", exc.message) from None
    return see_other("/registries")
