"""The audit log: filtered, cursor-paged reads and the chain's verification (administrators)."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.audit import FILTERS, AuditService, entry_view, parse_query, verdict_view

routes = RouteTable("audit")


@routes.route(
    "GET",
    "/api/v1/audit",
    summary="Audit entries, newest first; filters: actor, action (a prefix), host, outcome, since/until; "
    "pass the returned 'next' as 'cursor' for the following page",
    query=FILTERS,
    responses={200: "OK", 400: "bad filter", 403: "not an administrator"},
)
async def audit_list(request: web.Request) -> web.Response:
    service = AuditService(ctx(request).audit)
    entries, cursor = await service.page(current_user(request), parse_query(request.query))
    return web.json_response(
        {"entries": [entry_view(e) for e in entries], "next": str(cursor) if cursor is not None else None}
    )


@routes.route(
    "GET",
    "/api/v1/audit/verify",
    summary="Verify the audit hash chain: ok with the row count, or the first row that breaks it and how",
    responses={200: "OK (see 'ok')", 403: "not an administrator"},
)
async def audit_verify(request: web.Request) -> web.Response:
    verdict = await AuditService(ctx(request).audit).verify(current_user(request))
    return web.json_response(verdict_view(verdict))
