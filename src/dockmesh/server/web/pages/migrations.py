"""Migrate a stack from its page, and follow a migration live (docs/migration.md).

Reads and writes go through `services.migrations`; a refused form (pre-flight problems, a host out of
reach) comes back as the stack page with the service's message, like the stack's other forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.web.pages.stacks import _act, _page_error
from dockmesh.server.web.render import Session, render, require_session

routes = RouteTable("web")


@routes.route(
    "POST",
    "/stacks/{name}/migrate",
    summary="Move the stack with its volumes to the chosen host; shows the migration's progress",
    auth=False,
    responses={303: "to the migration's progress page", 200: "the stack page with the refusal"},
)
async def migrate_submit(request: web.Request) -> web.StreamResponse:
    async def act(session: Session, form: Mapping[str, Any]) -> str:
        service = ctx(request).migrations
        name = request.match_info["name"]
        source = await service.source_of(session.user, name, str(form.get("from") or "") or None)
        record = await service.start(session.user, name, source, str(form.get("host", "")))
        return f"/migrations/{record.id}"

    return await _act(request, act)


@routes.route(
    "GET",
    "/migrations/{id}",
    summary="A migration's live progress (phase, bytes copied, outcome); reopenable",
    auth=False,
)
async def migration_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    try:
        record = await c.migrations.get(session.user, request.match_info["id"])
    except ApiError as exc:
        raise _page_error(exc) from None
    names = {h.id: h.name for h in await c.directory.all()}
    return render(
        request,
        "migration.html",
        {
            "title": f"Migration of {record.stack}",
            "m": record,
            "source": names.get(record.source, record.source),
            "destination": names.get(record.destination, record.destination),
        },
        session=session,
        active="stacks",
        no_store=True,
    )
