"""The Upgrades page: server version, policy, the fleet's version skew, each host's last attempt, and the
rollouts (per-wave progress, refreshed live) with the form that starts one (agents.manage on every host)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.web.render import PageError, Session, render, require_session, see_other, session_form

routes = RouteTable("web")


def _draft(form: Mapping[str, Any]) -> dict[str, str]:
    return {
        "waves": str(form.get("waves", "")).strip()[:2048],
        "hosts": str(form.get("hosts", "")).strip()[:512],
        "max_failure_rate": str(form.get("max_failure_rate", "0")).strip()[:8],
    }


async def _page(
    request: web.Request, session: Session, draft: dict[str, str] | None = None, error: str = ""
) -> web.Response:
    c = ctx(request)
    overview = await c.upgrades.overview(session.user)
    return render(
        request,
        "upgrades.html",
        {
            "title": "Upgrades",
            **overview,
            "rollouts": await c.rollouts.recent(session.user),
            "can_roll": access.has_global(session.user, access.AGENTS_MANAGE),
            "draft": draft or {"waves": "tag:canary, 50%, 100%", "hosts": "", "max_failure_rate": "0"},
            "error": error,
        },
        session=session,
        active="upgrades",
        status=400 if error else 200,
        fragments={"rollouts": "_rollouts.html"},
    )


@routes.route(
    "GET", "/upgrades", summary="Upgrades page: version skew, per-host upgrade state, rollouts", auth=False
)
async def upgrades_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await require_session(request))


@routes.route(
    "POST",
    "/upgrades/rollouts",
    summary="Start a rollout from the Upgrades page's form",
    auth=False,
    responses={303: "back to the Upgrades page", 400: "the page with the form's error"},
)
async def rollout_form(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    if not access.has_any(session.user, access.AGENTS_MANAGE):
        raise PageError(403, "Not allowed", "Starting a rollout needs the 'agents.manage' permission.")
    draft = _draft(form)
    waves = [w.strip() for w in draft["waves"].replace("\n", ",").split(",") if w.strip()]
    rate_text = draft["max_failure_rate"].rstrip("%")
    try:
        rate = float(rate_text) / 100
    except ValueError:
        return await _page(request, session, draft, "The failure rate is a percentage from 0 to 100.")
    try:
        await ctx(request).rollouts.start(
            session.user, waves, hosts=draft["hosts"] or "all", max_failure_rate=rate
        )
    except ApiError as exc:
        return await _page(request, session, draft, exc.message)
    return see_other("/upgrades")


@routes.route(
    "POST",
    "/upgrades/rollouts/{id}/cancel",
    summary="Cancel (halt) a running rollout",
    auth=False,
    responses={303: "back to the Upgrades page"},
)
async def rollout_cancel_form(request: web.Request) -> web.StreamResponse:
    session, _form = await session_form(request)
    try:
        await ctx(request).rollouts.cancel(session.user, request.match_info["id"])
    except ApiError as exc:
        if exc.status == 409:
            return see_other("/upgrades")  # it ended meanwhile: the page shows how
        title = "Not found" if exc.status == 404 else "Not allowed"
        raise PageError(exc.status if exc.status in (403, 404) else 400, title, exc.message) from None
    return see_other("/upgrades")
