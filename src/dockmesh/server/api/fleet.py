"""Fan-out lists: containers, images, volumes, networks and stacks across the selected hosts."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.context import ctx
from dockmesh.server.fanout import fan_out, parse_deadline
from dockmesh.server.routes import Handler, RouteTable

routes = RouteTable("fleet")

RESOURCES = {
    "containers": ("containers.list", "name", "id, name, image, state, status, stack"),
    "images": ("images.list", "tags", "id, tags, size"),
    "volumes": ("volumes.list", "name", "name, driver, stack"),
    "networks": ("networks.list", "name", "id, name, driver, stack"),
    "stacks": ("stacks.list", "name", "name, services, running, total"),
}


def _lister(resource: str, method: str, sort_key: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        c = ctx(request)
        hosts = c.directory.select(request.query.get("host", "all"))
        deadline = parse_deadline(request.query.get("timeout"))
        result = await fan_out(hosts, method, {}, deadline, sort_key, encode=True)
        return web.Response(body=result.to_json(), content_type="application/json")

    handler.__name__ = f"list_{resource}"
    return handler


for _name, (_method, _sort, _fields) in RESOURCES.items():
    routes.route(
        "GET",
        f"/api/v1/{_name}",
        summary=f"{_name.capitalize()} across hosts (rows: {_fields}, host)",
        query=("host", "timeout"),
        responses={200: "{items, hosts}: rows with their host, and every selected host's outcome"},
    )(_lister(_name, _method, _sort))
