"""Which hosts exist, which a request selects, and the link that reaches each one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dockmesh.link import Link
from dockmesh.server.errors import ApiError
from dockmesh.server.gateway import Gateway
from dockmesh.server.localhost import LOCAL_ID, LocalHost
from dockmesh.server.selector import SelectorError, parse
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
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

    async def visible(self, caller: Caller, permission: str) -> list[HostRef]:
        """Every host on which the caller holds `permission` (the others are invisible), by name."""
        return access.allowed(caller, await self.all(), permission)

    async def select(self, selector: str, caller: Caller, permission: str) -> list[HostRef]:
        """The hosts a `?host=` names that the caller may use with `permission`.

        `all` (default), a host id, `tag:<t>`, or any host selector (`prod and not staging`). A host id
        out of the caller's scope is a 404 like an unknown one; in scope without `permission` a 403. A
        selection leaves out the hosts without `permission`: they are not errors, they are not there.
        """
        selector = (selector or "all").strip()
        hosts = await self.all()
        if selector == "all":
            return access.allowed(caller, hosts, permission)
        for host in hosts:
            if host.id == selector:
                access.check_host(caller, host, permission)
                return [host]
        if selector.startswith("tag:"):
            tag = selector[4:]
            if not _TAG.fullmatch(tag):
                raise ApiError(400, "invalid_tag", f"tag {tag!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
            return access.allowed(caller, [h for h in hosts if tag in h.tags], permission)
        try:
            parsed = parse(selector)
        except SelectorError as exc:
            raise ApiError(
                400,
                "invalid_selector",
                f"host selector: {exc.message} (at {exc.position})",
                details={"position": exc.position},
            ) from None
        if parsed.op == "tag" and not any(
            parsed.value in h.tags for h in access.allowed(caller, hosts, permission)
        ):
            # One bare word is what a host id looks like: an unknown one (or one out of scope) is a 404.
            raise access.not_found(selector)
        return access.allowed(caller, [h for h in hosts if parsed.matches(h.id, h.name, h.tags)], permission)

    async def require(self, host_id: str, caller: Caller, permission: str) -> tuple[HostRef, Link]:
        """The host and its live link: 400 (not one host), 404 (unknown or out of the caller's scope),
        403 (in scope, `permission` missing), 503 (offline, named: checked after the access)."""
        if host_id in ("", "all") or host_id.startswith("tag:"):
            raise ApiError(400, "bad_host", "address one host by its id")
        for host in await self.all():
            if host.id == host_id:
                break
        else:
            raise access.not_found(host_id)
        access.check_host(caller, host, permission)
        if host.link is None or host.link.closed:
            raise ApiError(503, "host_offline", f"host {host.name!r} is offline")
        return host, host.link
