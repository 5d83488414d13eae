"""What a stack's pages show about hosts beyond the stack records: where it may be deployed (cordoned or
offline hosts marked) and its containers on each host, live from the engines.

Functions, not `StackService` methods: they need only the host directory (and the agents' cordon flag),
and they apply the same per-host permission checks as the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.fanout import HostOutcome, fan_out
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.stacks import check_name
from dockmesh.store.agents import AgentStore


@dataclass(frozen=True)
class Target:
    """A host a deploy may be sent to; `cordoned` and offline hosts refuse new deploys."""

    id: str
    name: str
    online: bool
    cordoned: bool

    @property
    def usable(self) -> bool:
        return self.online and not self.cordoned


@dataclass(frozen=True)
class StackContainers:
    """`by_host`: host id → the stack's containers there (sorted by service, then name); `hosts`: the
    id → name of every host asked; `outcomes`: each host's answer (offline, timeout …)."""

    by_host: dict[str, list[dict[str, Any]]]
    hosts: dict[str, str]
    outcomes: list[HostOutcome]


def _allowed(caller: Caller, hosts: list[HostRef], permission: str) -> list[HostRef]:
    return access.allowed(caller, hosts, permission)


async def deploy_targets(directory: HostDirectory, agents: AgentStore, caller: Caller) -> list[Target]:
    """Every host the caller may deploy to, by name, with its cordon flag and whether it is online."""
    cordoned = {r.id for r in await agents.all() if r.cordoned}
    return [
        Target(h.id, h.name, h.online, h.id != LOCAL_ID and h.id in cordoned)
        for h in _allowed(caller, await directory.all(), "stacks.deploy")
    ]


async def stack_containers(
    directory: HostDirectory, caller: Caller, name: str, deadline: float
) -> StackContainers:
    """The containers labelled with the stack's project on every host the caller may view."""
    check_name(name)
    hosts = _allowed(caller, await directory.all(), "containers.view")
    gathered = await fan_out(hosts, "containers.list", {"all": True}, deadline)
    by_host: dict[str, list[dict[str, Any]]] = {}
    for row in gathered.items:
        if row.get("stack") == name:
            by_host.setdefault(str(row["host"]["id"]), []).append(row)
    for rows in by_host.values():
        rows.sort(key=lambda r: (str(r.get("service") or ""), str(r.get("name") or "")))
    return StackContainers(by_host, {h.id: h.name for h in hosts}, gathered.outcomes)
