"""Fan-out lists (containers, volumes, images, networks) and the container page; stacks have their own
pages (`pages.stacks`), over the stack service."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.fanout import DEFAULT_DEADLINE
from dockmesh.server.routes import Handler, RouteTable
from dockmesh.server.services import access, containers
from dockmesh.server.services.access import Caller
from dockmesh.server.services.fleet import ListQuery, listing, watch
from dockmesh.server.web.render import PageError, render, require_session

routes = RouteTable("web")

TITLES = {
    "containers": "Containers",
    "volumes": "Volumes",
    "images": "Images",
    "networks": "Networks",
}
EMPTY_HINTS = {
    "containers": "No containers on the selected hosts. Start one with docker run on a host.",
    "volumes": "No volumes on the selected hosts.",
    "images": "No images on the selected hosts.",
    "networks": "No networks on the selected hosts.",
}


async def host_choices(c: ServerContext, caller: Caller) -> dict[str, Any]:
    """The filter's options: every host the caller may list by name, then every tag on them."""
    hosts = await c.directory.visible(caller, access.CONTAINERS_VIEW)
    tags = sorted({t for h in hosts for t in h.tags})
    return {
        "hosts": [{"id": h.id, "name": h.name, "online": h.online} for h in hosts],
        "tags": tags,
    }


def _lister(resource: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await require_session(request)
        c = ctx(request)
        selector = request.query.get("host", "all").strip() or "all"
        error = ""
        status = 200
        try:
            q = ListQuery.parse(request.query, DEFAULT_DEADLINE)
            result = (await listing(c, session.user, resource, q)).to_dict()
        except ApiError as exc:
            result, error, status = {"items": [], "hosts": []}, exc.message, exc.status
        return render(
            request,
            "list.html",
            {
                "title": TITLES[resource],
                "resource": resource,
                "table": f"_{resource}_table.html",
                "selector": selector,
                "show_host": selector == "all" or selector.startswith("tag:"),
                "items": result["items"],
                "outcomes": result["hosts"],
                "failed": [h for h in result["hosts"] if h["status"] != "ok"],
                "filter_error": error,
                "empty_hint": EMPTY_HINTS[resource],
                "has_agents": bool(await c.agents.all()),
                **await host_choices(c, session.user),
            },
            session=session,
            active=resource,
            status=status,
            fragments={"list": "_list_body.html"},
        )

    handler.__name__ = f"{resource}_page"
    return handler


for _resource in TITLES:
    routes.route(
        "GET",
        f"/{_resource}",
        summary=f"{TITLES[_resource]} page across hosts, with a host filter (?host=all|<id>|tag:<t>)",
        auth=False,
        query=("host",),
    )(_lister(_resource))


@routes.route(
    "GET",
    "/lists/events",
    summary="Server-sent events for an open list page: `hosts` (those it may see), then `changed` with "
    "the ids of hosts whose rows changed (?resource=containers|images|volumes|networks&host=…)",
    auth=False,
    query=("resource", "host"),
)
async def list_events(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    resource = request.query.get("resource", "containers")
    if resource not in TITLES:
        raise PageError(400, "Unknown list", f"resource must be one of {', '.join(TITLES)}")
    selector = request.query.get("host", "all").strip() or "all"
    changes = watch(c, session.user, resource, selector)
    try:
        first = await anext(changes)
    except ApiError as exc:
        await changes.aclose()
        raise PageError(exc.status, "Bad host filter", exc.message) from None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    async with contextlib.aclosing(changes):
        await response.write(_sse("hosts", first))
        async for hosts in changes:
            # An empty batch is a keep-alive: writing it is how a reader that left is noticed.
            await response.write(_sse("changed", hosts) if hosts else b": idle\n\n")
    # The stream ends after its lifetime; the browser's EventSource reconnects (and re-checks the session).
    return response


def _sse(event: str, hosts: list[str]) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'hosts': hosts})}\n\n".encode()


async def _inspect(
    c: ServerContext, caller: Caller, host_id: str, container: str
) -> tuple[Any, dict[str, Any]]:
    try:
        host, link = await containers.reach(c, caller, host_id, access.CONTAINERS_VIEW)
    except ApiError as exc:
        title = {503: "Host offline", 403: "Not allowed"}.get(exc.status, "No such host")
        raise PageError(exc.status, title, exc.message) from None
    try:
        detail = await containers.call(
            host, link, "containers.inspect", {"id": container}, containers.INSPECT_TIMEOUT
        )
    except ApiError as exc:
        # A missing container, silence and a lost link have their own titles; anything else the host
        # reports is a 502 "Host error" in the host's words.
        status, title = _HOST_FAILURES.get(exc.code, (502, "Host error"))
        raise PageError(status, title, exc.message) from None
    return host, detail


_HOST_FAILURES = {
    "not_found": (404, "Container not found"),
    "host_timeout": (504, "Host timeout"),
    "host_offline": (503, "Host offline"),
}


def container_summary(detail: dict[str, Any]) -> dict[str, Any]:
    """The handful of inspect fields the page shows."""
    config = detail.get("Config") or {}
    state = detail.get("State") or {}
    host_config = detail.get("HostConfig") or {}
    networks = (detail.get("NetworkSettings") or {}).get("Networks") or {}
    labels = config.get("Labels") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return {
        "id": str(detail.get("Id", ""))[:12],
        "name": str(detail.get("Name", "")).lstrip("/"),
        "image": config.get("Image", ""),
        "state": state.get("Status", ""),
        "running": bool(state.get("Running")),
        "exit_code": state.get("ExitCode"),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "created": detail.get("Created"),
        "command": " ".join(str(part) for part in command),
        "restart_policy": (host_config.get("RestartPolicy") or {}).get("Name") or "no",
        "networks": sorted(networks),
        "mounts": [
            {
                "type": m.get("Type"),
                "source": m.get("Name") or m.get("Source"),
                "target": m.get("Destination"),
            }
            for m in detail.get("Mounts") or []
        ],
        "stack": labels.get("com.docker.compose.project"),
        "labels": sorted(labels.items()),
        "tty": bool(config.get("Tty")),
    }


@routes.route(
    "GET",
    "/containers/{host}/{container}",
    summary="Container page: summary, live logs, live stats chart, exec terminal",
    auth=False,
)
async def container_page(request: web.Request) -> web.StreamResponse:
    session = await require_session(request)
    c = ctx(request)
    host, detail = await _inspect(
        c, session.user, request.match_info["host"], request.match_info["container"]
    )
    summary = container_summary(detail)
    return render(
        request,
        "container.html",
        {"title": f"{summary['name']} on {host.name}", "host": host.summary(), "container": summary},
        session=session,
        active="containers",
        fragments={"summary": "_container_summary.html"},
    )
