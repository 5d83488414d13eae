"""The audit page: the log with the API's filters, newest first, a cursor to older rows, and a chain check."""

from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.audit import FILTERS, AuditService, entry_view, parse_query, verdict_view
from dockmesh.server.services.errors import Invalid
from dockmesh.server.web.render import PageError, render, require_session

routes = RouteTable("web")

OUTCOMES = ("ok", "denied", "failed")


@routes.route(
    "GET",
    "/audit",
    summary="Audit page: entries filtered by actor, action, host, outcome and time; verify the chain",
    auth=False,
    query=(*FILTERS, "verify"),
)
async def audit_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    if not access.is_admin(session.user):
        raise PageError(403, "Not allowed", "The audit log is for administrators.")
    c = ctx(request)
    service = AuditService(c.audit)
    values = {name: request.query.get(name, "") for name in FILTERS if name not in ("cursor", "limit")}
    error, entries, older = "", [], None
    try:
        found, cursor = await service.page(session.user, parse_query(request.query))
        entries = [entry_view(e) for e in found]
        if cursor is not None:
            older = "/audit?" + urllib.parse.urlencode(
                {**{k: v for k, v in values.items() if v}, "cursor": cursor}
            )
    except Invalid as exc:
        error = exc.message
    verdict: dict[str, Any] | None = None
    if request.query.get("verify"):
        verdict = verdict_view(await service.verify(session.user))
    hosts = {r.id: r.name for r in await c.agents.all()}
    return render(
        request,
        "audit.html",
        {
            "title": "Audit log",
            "entries": entries,
            "filters": values,
            "hosts": hosts,
            "outcomes": OUTCOMES,
            "older": older,
            "error": error,
            "verdict": verdict,
        },
        session=session,
        active="audit",
        no_store=True,
    )
