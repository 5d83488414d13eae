"""Cordon and uncordon: the scheduling flag that keeps new deploys and migrations off a host.

Cordoning moves nothing; what runs on the host keeps running (docs/migration.md). The flag lives on the
agent row, so the server's own engine (`local`, which has no row) cannot be cordoned.
"""

from __future__ import annotations

from dockmesh.server.localhost import LOCAL_ID
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import Conflict
from dockmesh.store.agents import AgentState, AgentStore
from dockmesh.store.audit import AuditStore


async def set_cordoned(
    agents: AgentStore, audit: AuditStore, now: float, caller: Caller, host_id: str, cordoned: bool
) -> str:
    """Set the host's flag (idempotent) and audit it; returns the host's name.

    Needs `hosts.manage` on the host: out of scope is a 404 like an unknown host, in scope without the
    permission a 403.
    """
    if host_id == LOCAL_ID:
        access.check(caller, LOCAL_ID, LOCAL_ID, (), access.HOSTS_MANAGE)
        raise Conflict("not_cordonable", "the server's own engine cannot be cordoned; move its stacks")
    record = await agents.get(host_id)
    if record is None or record.state is not AgentState.ENROLLED:
        raise access.not_found(host_id)
    access.check(caller, record.id, record.name, record.tags, access.HOSTS_MANAGE)
    await agents.set_cordoned(host_id, cordoned)
    action = "host.cordon" if cordoned else "host.uncordon"
    await audit.add(now, caller.username, action, host_id, {"name": record.name}, host=host_id)
    return record.name


async def cordoned_ids(agents: AgentStore) -> frozenset[str]:
    """Ids of the cordoned hosts, for the views that mark them."""
    return frozenset(r.id for r in await agents.all() if r.cordoned)
