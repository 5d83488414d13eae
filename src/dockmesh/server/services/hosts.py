"""Hosts: the local engine plus every enrolled agent, with status, tags and pushed metrics; and their tags.

Only the hosts the caller may view are listed; the API and the hosts pages both call these functions.
"""

from __future__ import annotations

import re
from typing import Any

from dockmesh import __version__
from dockmesh.server.context import ServerContext
from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.agents import agent_status
from dockmesh.server.services.errors import Invalid, NotFound
from dockmesh.store.agents import AgentState

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_TAGS = 20


def _metrics(c: ServerContext, values: dict[str, Any] | None, at: float | None) -> dict[str, Any] | None:
    if values is None or at is None:
        return None
    return {**values, "age_s": round(max(0.0, c.clock() - at), 3)}


async def host_views(c: ServerContext, caller: Caller) -> list[dict[str, Any]]:
    """Every host the caller may view (`hosts.view` on it); the others are not listed."""
    hosts: list[dict[str, Any]] = []
    if c.local.available and access.HOSTS_VIEW in access.rights(caller, LOCAL_ID, LOCAL_ID, ()):
        facts = c.local.facts
        hosts.append(
            {
                "id": LOCAL_ID,
                "name": LOCAL_ID,
                "kind": "local",
                "status": "online",
                "tags": [],
                "cordoned": False,
                "hostname": facts.get("hostname"),
                "os": facts.get("os"),
                "arch": facts.get("arch"),
                "docker_version": facts.get("docker_version"),
                "version": __version__,
                "upgrade": None,  # the server is its own version
                "metrics": _metrics(c, c.local.metrics, c.local.metrics_at),
            }
        )
    upgrades = await c.upgrades.states()
    for record in await c.agents.all():
        if record.state is AgentState.PENDING:
            continue
        if access.HOSTS_VIEW not in access.rights(caller, record.id, record.name, record.tags):
            continue
        conn = c.gateway.conn(record.id)
        facts = conn.facts if conn else record.facts
        hosts.append(
            {
                "id": record.id,
                "name": record.name,
                "kind": "agent",
                "status": agent_status(c, record),
                "tags": list(record.tags),
                "cordoned": record.cordoned,
                "hostname": facts.get("hostname"),
                "os": facts.get("os"),
                "arch": facts.get("arch"),
                "docker_version": facts.get("docker_version"),
                "version": facts.get("version"),
                "upgrade": upgrades.get(record.id),
                "metrics": _metrics(c, conn.metrics, conn.metrics_at) if conn else None,
            }
        )
    return hosts


async def host_view(c: ServerContext, caller: Caller, host_id: str) -> dict[str, Any]:
    """One host as `host_views` shows it; 404 when unknown or out of the caller's view."""
    for host in await host_views(c, caller):
        if host["id"] == host_id:
            return host
    raise NotFound("host_not_found", f"no host with id {host_id!r}")


async def set_tags(c: ServerContext, caller: Caller, host_id: str, tags: Any) -> list[str]:
    """Validate and store a host's tags (sorted, unique); the error says what is wrong.

    Needs `hosts.manage` from a role that reaches every host: tags decide every role's and credential's
    scope, so a scoped role could otherwise move its host into (or out of) other scopes. A host out of
    the caller's scope is still a 404 first, like an unknown one.
    """
    record = await c.agents.get(host_id) if host_id != LOCAL_ID else None
    if record is not None and record.state is not AgentState.PENDING:
        access.check(caller, record.id, record.name, record.tags, access.HOSTS_VIEW)
    elif host_id == LOCAL_ID:
        access.check(caller, LOCAL_ID, LOCAL_ID, (), access.HOSTS_VIEW)
    else:
        raise access.not_found(host_id)
    access.require_global(caller, access.HOSTS_MANAGE)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise Invalid("invalid_field", "'tags' must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise Invalid("invalid_field", f"at most {MAX_TAGS} tags")
    bad = [t for t in tags if not TAG_RE.fullmatch(t)]
    if bad:
        raise Invalid("invalid_tag", f"tag {bad[0]!r} must match [a-z0-9][a-z0-9-]{{0,31}}")
    if host_id == LOCAL_ID:
        raise Invalid("not_taggable", "the local host cannot be tagged yet")
    record = await c.agents.get(host_id)
    if record is None or record.state is AgentState.PENDING:
        raise NotFound("host_not_found", f"no host with id {host_id!r}")
    unique = sorted(set(tags))
    await c.agents.set_tags(host_id, unique)
    await c.audit.add(c.clock(), caller.username, "host.tags", host_id, {"tags": unique}, host=host_id)
    return unique
