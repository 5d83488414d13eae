"""Stacks: the fan-out list, the editor (validated on save), the stack page with its actions, and the
deploy progress page. Every read and write goes through `services.stacks` / `services.stack_hosts`;
their domain errors become an error next to the form (or an error page), never a JSON body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.fanout import DEFAULT_DEADLINE
from dockmesh.server.routes import Handler, RouteTable
from dockmesh.server.services import access, stack_hosts
from dockmesh.server.services.errors import Invalid, NotFound
from dockmesh.server.services.stacks import StackDetail
from dockmesh.server.web.pages.fleet import host_choices
from dockmesh.server.web.render import PageError, Session, render, require_session, see_other, session_form
from dockmesh.server.web.stackview import (
    DONE_MESSAGES,
    diff_lines,
    host_rows,
    normalise_text,
    service_states,
)

routes = RouteTable("web")

# A leading "_" is not valid in a stack name, so no stack's page can be shadowed by the new-stack form.
NEW = "/stacks/_new"
EMPTY_HINT = (
    "No stacks on the selected hosts. Create one with New stack; containers labelled with a Compose "
    "project show up here too, marked external."
)
STARTER = """services:
  web:
    image: local/busybox:1
    command: ["sleep", "infinity"]
"""


def _page_error(exc: ApiError) -> PageError:
    titles = {404: "Not found", 403: "Not allowed", 409: "Refused", 503: "Host offline"}
    return PageError(exc.status, titles.get(exc.status, "Error"), exc.message)


# --- the list -------------------------------------------------------------------------------------
@routes.route(
    "GET",
    "/stacks",
    summary="Stacks page across hosts: host, revision deployed vs current, services running, external",
    auth=False,
    query=("host",),
)
async def stacks_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    selector = request.query.get("host", "all").strip() or "all"
    error, status = "", 200
    items: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    undeployed: list[Any] = []
    try:
        listed = await c.stacks.list(session.user, selector, DEFAULT_DEADLINE)
        items = listed.items
        outcomes = [o.to_dict() for o in listed.hosts]
        shown = {row["name"] for row in items}
        undeployed = [r for r in listed.records if r.name not in shown]
    except ApiError as exc:
        error, status = exc.message, exc.status
    return render(
        request,
        "stacks.html",
        {
            "title": "Stacks",
            "resource": "stacks",
            "table": "_stacks_table.html",
            "selector": selector,
            "show_host": selector == "all" or selector.startswith("tag:"),
            "items": items,
            "undeployed": undeployed,
            "outcomes": outcomes,
            "failed": [h for h in outcomes if h["status"] != "ok"],
            "filter_error": error,
            "empty_hint": EMPTY_HINT,
            "has_agents": bool(await c.agents.all()),
            **await host_choices(c, session.user),
        },
        session=session,
        active="stacks",
        status=status,
        fragments={"list": "_list_body.html"},
    )


# --- the editor -----------------------------------------------------------------------------------
# A refused form comes back as 200 with the error next to it (like the login and tag forms): the browser
# shows the page again; the status codes are the API's business.
def _editor(
    request: web.Request,
    session: Session,
    *,
    name: str,
    compose: str,
    env: str,
    allow_privileged: bool,
    creating: bool,
    error: ApiError | None = None,
) -> web.Response:
    details = error.details if error is not None else {}
    return render(
        request,
        "stack_edit.html",
        {
            "title": "New stack" if creating else f"Edit {name}",
            "name": name,
            "compose": compose,
            "env": env,
            "allow_privileged": allow_privileged,
            "may_allow": access.can_allow_privileged(session.user),
            "creating": creating,
            "action": NEW if creating else f"/stacks/{name}/edit",
            "error": error.message if error is not None else "",
            "error_code": error.code if error is not None else "",
            "error_key": details.get("key") or "",
            "error_line": details.get("line") or "",
        },
        session=session,
        active="stacks",
        no_store=True,
    )


@routes.route("GET", NEW, summary="New stack: name, compose.yaml editor, optional .env", auth=False)
async def new_stack_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    return _editor(request, session, name="", compose=STARTER, env="", allow_privileged=False, creating=True)


async def _save(
    request: web.Request, session: Session, form: Mapping[str, Any], name: str, creating: bool
) -> web.StreamResponse:
    c = ctx(request)
    compose = normalise_text(form.get("compose"))
    env = normalise_text(form.get("env"))
    may_allow = access.can_allow_privileged(session.user)
    flag = bool(form.get("allow_privileged")) if may_allow else None
    try:
        if creating:
            await _refuse_existing(c, session, name)
        await c.stacks.save(session.user, name, compose, env, flag)
    except ApiError as exc:
        if exc.status in (400, 409, 413):
            return _editor(
                request,
                session,
                name=name,
                compose=compose,
                env=env,
                allow_privileged=bool(flag),
                creating=creating,
                error=exc,
            )
        raise _page_error(exc) from None
    return see_other(f"/stacks/{name}?done=saved")


async def _refuse_existing(c: ServerContext, session: Session, name: str) -> None:
    try:
        await c.stacks.record(session.user, name)
    except NotFound:
        return
    raise Invalid("stack_exists", f"a stack named {name!r} exists already: open it and edit it there")


@routes.route(
    "POST",
    NEW,
    summary="Create a stack from the editor (validated; nothing is saved on error)",
    auth=False,
    responses={303: "to the stack", 200: "the editor again, with the error at its line"},
)
async def new_stack_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    name = str(form.get("name", "")).strip()
    return await _save(request, session, form, name, creating=True)


@routes.route("GET", "/stacks/{name}/edit", summary="Edit a stack's compose.yaml and .env", auth=False)
async def edit_stack_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    detail = await _detail(request, session)
    return _editor(
        request,
        session,
        name=detail.record.name,
        compose=detail.current.compose,
        env=detail.current.env,
        allow_privileged=detail.record.allow_privileged,
        creating=False,
    )


@routes.route(
    "POST",
    "/stacks/{name}/edit",
    summary="Save a new revision from the editor (validated; nothing is saved on error)",
    auth=False,
    responses={303: "to the stack", 200: "the editor again, with the error at its line"},
)
async def edit_stack_submit(request: web.Request) -> web.StreamResponse:
    session, form = await session_form(request)
    record = (await _detail(request, session)).record
    return await _save(request, session, form, record.name, creating=False)


# --- the stack page -------------------------------------------------------------------------------
async def _detail(request: web.Request, session: Session) -> StackDetail:
    try:
        return await ctx(request).stacks.detail(session.user, request.match_info["name"])
    except ApiError as exc:
        raise _page_error(exc) from None


async def _stack_page(
    request: web.Request, session: Session, *, action_error: str = "", status: int = 200
) -> web.Response:
    c = ctx(request)
    detail = await _detail(request, session)
    name = detail.record.name
    containers = await stack_hosts.stack_containers(c.directory, session.user, name, DEFAULT_DEADLINE)
    targets = await stack_hosts.deploy_targets(c.directory, c.agents, session.user)
    revisions = await c.stacks.revisions(session.user, name)
    names = {t.id: t.name for t in targets} | containers.hosts
    hosts = host_rows(detail.placements, containers.by_host, names, detail.record.revision)
    return render(
        request,
        "stack.html",
        {
            "title": f"Stack {name}",
            "stack": detail.record,
            "current": detail.current,
            "hosts": hosts,
            "failed": [o.to_dict() for o in containers.outcomes if o.status != "ok"],
            "targets": targets,
            "deployments": detail.deployments,
            "host_names": names,
            "revisions": [(r, diff_lines(r.diff)) for r in revisions],
            "log_hosts": [h for h in hosts if h["containers"]],
            "done": DONE_MESSAGES.get(request.query.get("done", ""), ""),
            "action_error": action_error,
        },
        session=session,
        active="stacks",
        status=status,
        fragments={"hosts": "_stack_hosts.html"},
    )


@routes.route(
    "GET",
    "/stacks/{name}",
    summary="Stack page: services and containers per host, deploy, actions, history, revisions, logs",
    auth=False,
)
async def stack_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    return await _stack_page(request, session)


Action = Callable[[Session, Mapping[str, Any]], Awaitable[str]]


async def _act(request: web.Request, act: Action) -> web.StreamResponse:
    """Run a form's action (it returns where to go next); on a refusal show the stack page with the
    service's message."""
    session, form = await session_form(request)
    try:
        return see_other(await act(session, form))
    except ApiError as exc:
        # A host out of reach (404) or a missing permission (403) keeps its status, as the API's does.
        status = exc.status if exc.status in (403, 404) else 200
        return await _stack_page(request, session, action_error=exc.message, status=status)


@routes.route(
    "POST",
    "/stacks/{name}/deploy",
    summary="Deploy the stack's current revision to the chosen host; shows the deploy's progress",
    auth=False,
    responses={303: "to the deploy's progress page", 200: "the stack page with the refusal"},
)
async def deploy_submit(request: web.Request) -> web.StreamResponse:
    async def act(session: Session, form: Mapping[str, Any]) -> str:
        deployment = await ctx(request).stacks.deploy(
            session.user, request.match_info["name"], str(form.get("host", ""))
        )
        return f"/deploys/{deployment.id}"

    return await _act(request, act)


def _host_action(action: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]

        async def act(session: Session, form: Mapping[str, Any]) -> str:
            host = str(form.get("host", ""))
            if action == "remove":
                await ctx(request).stacks.remove(session.user, name, host, volumes=bool(form.get("volumes")))
            else:
                await ctx(request).stacks.action(session.user, name, host, action)
            return f"/stacks/{name}?done={action}"

        return await _act(request, act)

    handler.__name__ = f"stack_{action}_submit"
    return handler


for _action, _summary in (
    ("stop", "Stop every container of the stack on one host"),
    ("start", "Start every container of the stack on one host"),
    ("remove", "Remove the stack from one host (its volumes too only when asked)"),
):
    routes.route(
        "POST", f"/stacks/{{name}}/{_action}", summary=_summary, auth=False, responses={303: "back"}
    )(_host_action(_action))


@routes.route(
    "POST",
    "/stacks/{name}/delete",
    summary="Delete the stack's record, revisions and history (refused while it is deployed)",
    auth=False,
    responses={303: "to the stacks list", 200: "the stack page with the refusal"},
)
async def delete_submit(request: web.Request) -> web.StreamResponse:
    async def act(session: Session, form: Mapping[str, Any]) -> str:
        await ctx(request).stacks.delete(session.user, request.match_info["name"])
        return "/stacks"

    return await _act(request, act)


# --- deploy progress ------------------------------------------------------------------------------
@routes.route(
    "GET",
    "/deploys/{id}",
    summary="A deploy's live progress (per-service pull bytes, create, start, health); reopenable",
    auth=False,
)
async def deploy_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    try:
        deployment = await c.stacks.deployment(session.user, request.match_info["id"])
    except ApiError as exc:
        raise _page_error(exc) from None
    hosts = {h.id: h.name for h in await c.directory.all()}
    return render(
        request,
        "deploy.html",
        {
            "title": f"Deploy of {deployment.stack}",
            "deploy": deployment,
            "host_name": hosts.get(deployment.host, deployment.host),
            "services": service_states(deployment.services),
        },
        session=session,
        active="stacks",
        no_store=True,
    )
