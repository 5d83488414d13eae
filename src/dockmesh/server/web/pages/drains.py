"""Drain pages: the host's Drain form (destination selector, order, concurrency) with the dry-run plan,
and the drain page that follows the running drain (its body is a fragment refreshed every second)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services.drainrun import MAX_CONCURRENCY
from dockmesh.server.services.drains import DrainRequest
from dockmesh.server.services.drainview import record_view
from dockmesh.server.web.render import PageError, render, require_session, see_other, session_form

routes = RouteTable("web")


def _page_error(exc: ApiError) -> PageError:
    if exc.status == 404:
        return PageError(404, "Not found", exc.message)
    return PageError(403, "Not allowed", exc.message)


def _draft(form: Mapping[str, Any]) -> dict[str, Any]:
    concurrency = str(form.get("concurrency", "1")).strip()
    return {
        "destinations": str(form.get("destinations", "")).strip()[:512],
        "order": str(form.get("order", "smallest")),
        "concurrency": int(concurrency) if concurrency.isdigit() else 0,
    }


async def _form_page(
    request: web.Request, session: Any, host_id: str, draft: dict[str, Any], **extra: Any
) -> web.Response:
    c = ctx(request)
    try:
        await c.drains.check_source(session.user, host_id)
        drains = await c.drains.recent(session.user, host_id)
    except ApiError as exc:
        raise _page_error(exc) from None
    name = next((h.name for h in await c.directory.all() if h.id == host_id), host_id)
    return render(
        request,
        "drain_form.html",
        {
            "title": f"Drain {name}",
            "host": {"id": host_id, "name": name},
            "draft": draft,
            "max_concurrency": MAX_CONCURRENCY,
            "drains": [record_view(d) for d in drains],
            "plan": None,
            "error": "",
            **extra,
        },
        session=session,
        active="hosts",
        status=400 if extra.get("error") else 200,
    )


@routes.route("GET", "/hosts/{id}/drain", summary="Drain form: destinations, order, dry-run plan", auth=False)
async def drain_form(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    draft = {"destinations": request.query.get("to", ""), "order": "smallest", "concurrency": 1}
    return await _form_page(request, session, request.match_info["id"], draft)


@routes.route(
    "POST",
    "/hosts/{id}/drain",
    summary="Preview the drain's plan (dry run) or start it",
    auth=False,
    responses={303: "to the drain page", 200: "the form with the plan", 400: "the form with the error"},
)
async def drain_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    c, host_id = ctx(request), request.match_info["id"]
    try:
        await c.drains.check_source(session.user, host_id)
    except ApiError as exc:
        raise _page_error(exc) from None
    draft = _draft(form)
    try:
        drain_request = DrainRequest(
            host_id, c.drains.selector_of(draft["destinations"] or " "), draft["order"], draft["concurrency"]
        )
        if form.get("action") == "start":
            drain = await c.drains.start(session.user, drain_request)
            return see_other(f"/drains/{drain.id}")
        plan = await c.drains.dry_run(session.user, drain_request)
    except ApiError as exc:
        return await _form_page(request, session, host_id, draft, error=exc.message)
    return await _form_page(request, session, host_id, draft, plan=plan)


@routes.route("GET", "/drains/{id}", summary="Drain page: live progress, then the summary", auth=False)
async def drain_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    try:
        view = await ctx(request).drains.get(session.user, request.match_info["id"])
    except ApiError as exc:
        raise _page_error(exc) from None
    return render(
        request,
        "drain.html",
        {"title": f"Drain of {view['source']['name']}", "drain": view},
        session=session,
        active="hosts",
        fragments={"drain": "_drain_body.html"},
        no_store=True,
    )
