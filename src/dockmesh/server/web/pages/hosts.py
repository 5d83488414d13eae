"""Hosts: the list (status, tags, metrics, agent version) and the host page with its tag editor."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import hosts
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import NotFound
from dockmesh.server.web.render import PageError, render, require_session, see_other, session_form

routes = RouteTable("web")

_SPLIT = re.compile(r"[\s,]+")


async def _host(c: ServerContext, caller: Caller, host_id: str) -> dict[str, Any]:
    try:
        return await hosts.host_view(c, caller, host_id)
    except NotFound:
        raise PageError(404, "No such host", f"There is no host with id {host_id!r}.") from None


@routes.route("GET", "/hosts", summary="Hosts page: status, tags, CPU/memory/disk, agent version", auth=False)
async def hosts_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    return render(
        request,
        "hosts.html",
        {
            "title": "Hosts",
            "hosts": await hosts.host_views(c, session.user),
            "has_agents": bool(await c.agents.all()),
        },
        session=session,
        active="hosts",
        fragments={"hosts": "_hosts_table.html"},
    )


async def _host_page(
    request: web.Request,
    session: Any,
    host_id: str,
    *,
    error: str = "",
    draft: str | None = None,
    status: int = 200,
) -> web.Response:
    c = ctx(request)
    host = await _host(c, session.user, host_id)
    return render(
        request,
        "host.html",
        {
            "title": f"Host {host['name']}",
            "host": host,
            "taggable": host_id != LOCAL_ID,
            "tag_error": error,
            "tag_draft": draft if draft is not None else ", ".join(host["tags"]),
            "saved": request.query.get("saved") == "tags",
        },
        session=session,
        active="hosts",
        status=status,
        fragments={"host": "_host_detail.html"},
    )


@routes.route("GET", "/hosts/{id}", summary="Host page: facts, live metrics, tag editor", auth=False)
async def host_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    return await _host_page(request, session, request.match_info["id"])


@routes.route(
    "POST",
    "/hosts/{id}/tags",
    summary="Replace the host's tags from the tag editor",
    auth=False,
    responses={303: "back to the host", 200: "the form again, with the error"},
)
async def tags_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    host_id = request.match_info["id"]
    raw = str(form.get("tags", ""))
    tags = [t for t in _SPLIT.split(raw.strip().lower()) if t]
    try:
        await hosts.set_tags(ctx(request), session.user, host_id, tags)
    except ApiError as exc:
        if exc.status == 404:
            raise PageError(404, "No such host", exc.message) from None
        if exc.status == 403:
            raise PageError(403, "Not allowed", exc.message) from None
        return await _host_page(request, session, host_id, error=exc.message.capitalize() + ".", draft=raw)
    return see_other(f"/hosts/{host_id}?saved=tags")
