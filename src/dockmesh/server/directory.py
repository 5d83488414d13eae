"""Which hosts exist, which a request selects, and the link that reaches each one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockmesh.link import Link
from dockmesh.server.errors import ApiError
from dockmesh.server.gateway import Gateway
from dockmesh.server.localhost import LOCAL_ID, LocalHost
from dockmesh.store.agents import AgentState, AgentStore

_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class HostRef:
    id: str
    name: str
    tags: tuple[str, ...]
    link: Link | None
    metrics: dict[str, Any] | None = None
    metrics_at: float | None = None

    @property
    def online(self) -> bool:
        return self.link is not None and not self.link.closed

    def summary(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


class HostDirectory:
    def __init__(self, agents: AgentStore, gateway: Gateway, local: LocalHost) -> None:
        self._agents = agents
        self._gateway = gateway
        self._local = local

    async def all(self) -> list[HostRef]:
        """Local (when its engine answers) and every enrolled agent, online or not, by name."""
        hosts: list[HostRef] = []
        if self._local.available:
            hosts.append(
                HostRef(LOCAL_ID, LOCAL_ID, (), self._local.link, self._local.metrics, self._local.metrics_at)
            )
        for record in await self._agents.all():
            if record.state is not AgentState.ENROLLED:
                continue
            conn = self._gateway.conn(record.id)
            hosts.append(
                HostRef(
                    record.id,
                    record.name,
                    record.tags,
                    conn.link if conn else None,
                    conn.metrics if conn else None,
                    conn.metrics_at if conn else None,
                )
            )
        return sorted(hosts, key=lambda h: (h.name, h.id))

    async def select(self, selector: str) -> list[HostRef]:
        """`all`, a host id, or `tag:<t>`; an unknown host id is a 404."""
        selector = (selector or "all").strip()
        hosts = await self.all()
        if selector == "all":
            return hosts
        if selector.startswith("tag:"):
            tag = selector[4:]
            if not _TAG.fullmatch(tag):
                raise ApiError(400, "invalid_tag", f"tag {tag!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
            return [h for h in hosts if tag in h.tags]
        for host in hosts:
            if host.id == selector:
                return [host]
        raise ApiError(404, "host_not_found", f"no host with id {selector!r}")

    async def require(self, host_id: str) -> tuple[HostRef, Link]:
        """The host and its live link, or 400 (not one host) / 404 (unknown) / 503 (offline, named)."""
        if host_id in ("", "all") or host_id.startswith("tag:"):
            raise ApiError(400, "bad_host", "address one host by its id")
        host = (await self.select(host_id))[0]
        if host.link is None or host.link.closed:
            raise ApiError(503, "host_offline", f"host {host.name!r} is offline")
        return host, host.link
