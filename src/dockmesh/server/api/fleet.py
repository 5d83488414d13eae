"""Fan-out lists: containers, images, volumes, networks and stacks across the selected hosts."""

from __future__ import annotations

import contextlib

import orjson
from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ctx
from dockmesh.server.fanout import Gather, parse_deadline
from dockmesh.server.routes import Handler, RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.fleet import RESOURCES, ListQuery, listing

routes = RouteTable("fleet")


def _lister(resource: str, method: str, sort_key: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        c = ctx(request)
        q = ListQuery.parse(request.query, parse_deadline(request.query.get("timeout")))
        if not q.fresh:
            # From the hosts' pushed inventory (docs/inventory.md): no round trip for current hosts.
            listed = await listing(c, current_user(request), resource, q)
            return web.Response(body=orjson.dumps(listed.to_dict()), content_type="application/json")
        # ?fresh=1: every host asked now. Out-of-scope hosts are not selected at all: neither their
        # rows nor their outcome appear.
        hosts = await c.directory.select(q.selector, current_user(request), access.CONTAINERS_VIEW)
        deadline = q.deadline
        gather = Gather(hosts, method, {}, deadline, sort_key, encode=True)
        # Streamed: rows go out as their host's turn comes, so a slow host holds back only what
        # sorts after it, and a big list is on the wire while the last hosts are still answering.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async with contextlib.aclosing(gather.stream()) as pieces:
            async for piece in pieces:
                await response.write(piece)
        await response.write_eof()
        return response

    handler.__name__ = f"list_{resource}"
    return handler


for _name, (_method, _sort, _fields) in RESOURCES.items():
    if _name == "stacks":
        continue  # api/stacks.py: the engines' stacks merged with the server's records
    routes.route(
        "GET",
        f"/api/v1/{_name}",
        summary=f"{_name.capitalize()} across hosts (rows: {_fields}, host)",
        query=("host", "timeout", "stale", "fresh"),
        responses={
            200: "{items, hosts}: rows with their host (stale: true on an offline host's last-known rows),"
            " and every selected host's outcome with age_s and stale"
        },
    )(_lister(_name, _method, _sort))
