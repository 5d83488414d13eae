"""Agents: the list, New agent (name → install command), detail with revoke and token rotation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access, agents
from dockmesh.server.services.access import Caller
from dockmesh.server.web.render import (
    PageError,
    render,
    require_global,
    require_session,
    see_other,
    session_form,
)

routes = RouteTable("web")

MAX_NAME = 64


async def _record(
    c: ServerContext, caller: Caller, agent_id: str, permission: str = access.HOSTS_VIEW
) -> Any:
    try:
        return await agents.get_record(c, caller, agent_id, permission)
    except ApiError as exc:
        if exc.status == 403:
            raise PageError(403, "Not allowed", exc.message) from None
        raise PageError(404, "No such agent", f"There is no agent with id {agent_id!r}.") from None


@routes.route(
    "GET", "/agents", summary="Agents page: status, version, last seen, certificate expiry", auth=False
)
async def agents_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    views = await agents.views(ctx(request), session.user)
    return render(
        request,
        "agents.html",
        {"title": "Agents", "agents": views},
        session=session,
        active="agents",
        fragments={"agents": "_agents_table.html"},
    )


@routes.route("GET", "/agents/new", summary="New agent form (asks only for a name)", auth=False)
async def new_agent_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    require_global(session, access.AGENTS_MANAGE)
    return render(
        request,
        "agent_new.html",
        {"title": "New agent", "error": "", "name": ""},
        session=session,
        active="agents",
    )


def _enrol_page(
    request: web.Request, session: Any, agent: dict[str, Any], enrolment: dict[str, Any], rotated: bool
) -> web.Response:
    # The token is shown once: this page must not be cached anywhere.
    return render(
        request,
        "agent_enrol.html",
        {
            "title": f"Enrol {agent['name']}",
            "agent": agent,
            "enrolment": enrolment,
            "rotated": rotated,
        },
        session=session,
        active="agents",
        no_store=True,
    )


@routes.route(
    "POST",
    "/agents/new",
    summary="Create an agent from the form; shows its install command once",
    auth=False,
    responses={200: "HTML with the install command"},
)
async def new_agent_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    require_global(session, access.AGENTS_MANAGE)
    c = ctx(request)
    name = str(form.get("name", "")).strip()
    if not name or len(name) > MAX_NAME:
        return render(
            request,
            "agent_new.html",
            {
                "title": "New agent",
                "error": f"Give the agent a name of 1 to {MAX_NAME} characters.",
                "name": name,
            },
            session=session,
            active="agents",
        )
    created = await agents.create_pending(c, session.user, name)
    return _enrol_page(
        request,
        session,
        agents.agent_view(c, await _record(c, session.user, created["id"])),
        created,
        rotated=False,
    )


@routes.route("GET", "/agents/{id}", summary="Agent detail: certificate, revoke, rotate token", auth=False)
async def agent_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    record = await _record(c, session.user, request.match_info["id"])
    return render(
        request,
        "agent.html",
        {"title": f"Agent {record.name}", "agent": agents.agent_view(c, record)},
        session=session,
        active="agents",
        fragments={"agent": "_agent_detail.html"},
    )


@routes.route(
    "POST",
    "/agents/{id}/revoke",
    summary="Revoke the agent from its page",
    auth=False,
    responses={303: "back"},
)
async def revoke_submit(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    c = ctx(request)
    record = await _record(c, session.user, request.match_info["id"], access.AGENTS_MANAGE)
    await agents.revoke(c, session.user, record.id)
    return see_other(f"/agents/{record.id}")


@routes.route(
    "POST",
    "/agents/{id}/rotate-token",
    summary="Rotate the agent's enrolment token from its page; shows the new install command once",
    auth=False,
    responses={200: "HTML with the install command"},
)
async def rotate_submit(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    c = ctx(request)
    record = await _record(c, session.user, request.match_info["id"], access.AGENTS_MANAGE)
    record, enrolment = await agents.rotate(c, session.user, record.id)
    return _enrol_page(request, session, agents.agent_view(c, record), enrolment, rotated=True)
