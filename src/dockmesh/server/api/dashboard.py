"""Fleet totals and a tile per host, from the metrics hosts push with their heartbeats."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.jsonio import json_response
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access, maintenance
from dockmesh.server.services.access import Caller

routes = RouteTable("dashboard")

# Totals are plain sums of these tile fields.
SUMMED = (
    "cpu_cores",
    "cpu_cores_used",
    "mem_used",
    "mem_total",
    "disk_used",
    "disk_total",
    "containers_running",
)


def tile_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    cores = int(metrics.get("cpu_count", 1) or 1)
    percent = float(metrics.get("cpu_percent", 0.0) or 0.0)
    return {
        "cpu_percent": round(percent, 1),
        "cpu_cores": cores,
        "cpu_cores_used": round(percent * cores / 100, 3),
        **{k: int(metrics.get(k, 0) or 0) for k in SUMMED[2:]},
    }


@routes.route("GET", "/api/v1/dashboard", summary="Fleet totals (CPU, memory, disk) and per-host tiles")
async def dashboard(request: web.Request) -> web.Response:
    return json_response(await dashboard_view(ctx(request), current_user(request)))


async def dashboard_view(c: ServerContext, caller: Caller) -> dict[str, Any]:
    """`{"totals", "hosts"}`: the API's answer, also rendered by the web dashboard; only the hosts the
    caller may view are tiles or summed."""
    now = c.clock()
    tiles: list[dict[str, Any]] = []
    totals: dict[str, Any] = {key: 0 for key in SUMMED}
    hosts = await c.directory.visible(caller, access.HOSTS_VIEW)
    cordoned = await maintenance.cordoned_ids(c.agents)
    for host in hosts:
        tile: dict[str, Any] = {
            "id": host.id,
            "name": host.name,
            "status": "online" if host.online else "offline",
            "cordoned": host.id in cordoned,
        }
        if host.online and host.metrics:
            tile.update(tile_metrics(host.metrics))
            tile["age_s"] = round(max(0.0, now - (host.metrics_at or now)), 3)
            for key in SUMMED:
                totals[key] += tile[key]
        tiles.append(tile)
    totals["cpu_cores_used"] = round(totals["cpu_cores_used"], 3)
    # Fleet CPU % is busy cores over all cores, so a 64-core host weighs more than a Raspberry Pi.
    totals["cpu_percent"] = (
        round(100 * totals["cpu_cores_used"] / totals["cpu_cores"], 1) if totals["cpu_cores"] else 0.0
    )
    totals["hosts_online"] = sum(1 for h in hosts if h.online)
    totals["hosts_total"] = len(hosts)
    return {"totals": totals, "hosts": tiles}
