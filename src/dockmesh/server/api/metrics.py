"""Prometheus text exposition: agents, event-loop lag, process memory and CPU."""

from __future__ import annotations

import os
import resource

from aiohttp import web

from dockmesh.server.api.auth import bearer
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.store.agents import AgentState

routes = RouteTable("meta")


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@routes.route("GET", "/metrics", summary="Prometheus metrics (bearer token required)")
async def metrics(request: web.Request) -> web.Response:
    c = ctx(request)
    token = bearer(request)
    caller = await c.accounts.user_for_token(token) if token is not None else None
    if caller is None:
        raise ApiError(401, "unauthorized", "metrics need a bearer token")
    # Fleet-wide counts: only for a caller who sees every host.
    access.require_global(caller, access.HOSTS_VIEW)
    records = await c.agents.all()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lines = [
        "# TYPE dockmesh_agents gauge",
        *(
            f'dockmesh_agents{{state="{state}"}} {count}'
            for state, count in (
                ("online", len(c.gateway.online_ids())),
                ("enrolled", sum(r.state is AgentState.ENROLLED for r in records)),
                ("pending", sum(r.state is AgentState.PENDING for r in records)),
                ("revoked", sum(r.state is AgentState.REVOKED for r in records)),
            )
        ),
        "# TYPE dockmesh_event_loop_lag_seconds summary",
        *(
            f'dockmesh_event_loop_lag_seconds{{quantile="{q}"}} {c.loop_lag.quantile(q):.6f}'
            for q in (0.5, 0.99, 1.0)
        ),
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {_rss_bytes()}",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime:.3f}",
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")
