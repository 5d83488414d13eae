"""Agents: their views, enrolment tokens, revoke and rotate, with the caller's rights checked here.

An agent is a host: it is visible when some role's scope matches it, and unknown otherwise (404). Managing
it (revoke, rotate) needs `agents.manage` on it; creating one needs `agents.manage` globally. The API and
the agents pages both call these functions.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from dockmesh.proto import CloseCode
from dockmesh.server.context import ServerContext
from dockmesh.server.installer import install_command
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.services.errors import NotFound
from dockmesh.server.tokens import make_token, token_hash
from dockmesh.store.agents import AgentRecord, AgentState


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def agent_status(c: ServerContext, record: AgentRecord) -> str:
    if record.state is not AgentState.ENROLLED:
        return str(record.state.value)
    return "online" if c.gateway.conn(record.id) else "offline"


def agent_view(c: ServerContext, record: AgentRecord) -> dict[str, Any]:
    conn = c.gateway.conn(record.id)
    facts = conn.facts if conn else record.facts
    return {
        "id": record.id,
        "name": record.name,
        "status": agent_status(c, record),
        "hostname": facts.get("hostname"),
        "version": facts.get("version"),
        "os": facts.get("os"),
        "arch": facts.get("arch"),
        "docker_version": facts.get("docker_version"),
        "last_seen": iso(c.clock() if conn else record.last_seen),
        "created_at": iso(record.created_at),
        "enrolled_at": iso(record.enrolled_at),
        "token_expires_at": iso(record.token_expires_at) if record.state is AgentState.PENDING else None,
        "cert": (
            {
                "serial": record.cert.serial,
                "not_before": iso(record.cert.not_before),
                "not_after": iso(record.cert.not_after),
                "fingerprint": record.cert.fingerprint,
            }
            if record.cert
            else None
        ),
        "tags": list(record.tags),
        "last_error": record.last_error,
    }


def enrolment(c: ServerContext, token: str, expires_at: float) -> dict[str, Any]:
    """What a user needs to enrol a host: shown once, never stored in clear.

    ``install_command`` is pinned to the UI listener's key whenever this server serves TLS itself; the
    plain ``curl https://…`` form is added only when the system roots verify the operator's certificate.
    """
    served = c.web_tls.served if c.web_tls else None
    pin = served.pin if served else None
    plain = served is not None and served.publicly_trusted
    return {
        "token": token,
        "token_expires_at": iso(expires_at),
        "install_command": install_command(c.config.public_url, token, pin),
        "install_command_plain": install_command(c.config.public_url, token) if plain else None,
        "https_pin": pin,
        "enroll_url": c.config.agent_url,
        "ca_sha256": c.ca.ca_sha256,
    }


def visible(caller: Caller, record: AgentRecord) -> bool:
    """An agent is a host: visible when some role's scope matches it (a pending one has no tags yet)."""
    return bool(access.rights(caller, record.id, record.name, record.tags))


async def views(c: ServerContext, caller: Caller) -> list[dict[str, Any]]:
    """Every agent the caller can see; the others are left out, not refused."""
    return [agent_view(c, r) for r in await c.agents.all() if visible(caller, r)]


async def get_record(
    c: ServerContext, caller: Caller, agent_id: str, permission: str = access.HOSTS_VIEW
) -> AgentRecord:
    """The agent if visible to the caller (else 404, as unknown) and `permission` held on it (else 403).

    Reading needs only visibility; `permission` is checked when it is not `hosts.view`."""
    record = await c.agents.get(agent_id)
    if record is None or not visible(caller, record):
        raise NotFound("agent_not_found", f"no agent with id {agent_id!r}")
    if permission != access.HOSTS_VIEW:
        access.check(caller, record.id, record.name, record.tags, permission)
    return record


async def create_pending(c: ServerContext, caller: Caller, name: str) -> dict[str, Any]:
    """A pending agent with its one-time token (the API's answer; the web page renders the same)."""
    access.require_global(caller, access.AGENTS_MANAGE)
    token = make_token(c.ca.ca_sha256)
    now = c.clock()
    expires_at = now + c.config.token_ttl
    record = await c.agents.create(name, token_hash(token), expires_at, now)
    await c.audit.add(now, caller.username, "agent.create", record.id, {"name": name}, host=record.id)
    return {**agent_view(c, record), **enrolment(c, token, expires_at)}


async def revoke(c: ServerContext, caller: Caller, agent_id: str) -> AgentRecord:
    """Revoke the agent and cut its live link; the record as it is now."""
    record = await get_record(c, caller, agent_id, access.AGENTS_MANAGE)
    # Persist first: a crash between the two steps must leave the agent refused, not connected.
    await c.agents.revoke(record.id)
    # The close may wait out its timeout on a peer that does not read: write the audit row meanwhile,
    # so a revoke answers within the close bound (2 s) rather than after it plus a transaction.
    await asyncio.gather(
        c.gateway.disconnect(record.id, CloseCode.UNAUTHORIZED, "agent revoked"),
        c.audit.add(
            c.clock(), caller.username, "agent.revoke", record.id, {"name": record.name}, host=record.id
        ),
    )
    return await get_record(c, caller, record.id)


async def rotate(c: ServerContext, caller: Caller, agent_id: str) -> tuple[AgentRecord, dict[str, Any]]:
    """A new enrolment token for the agent; its old certificate stops working at once.

    Returns the agent as it is now and the enrolment (token, install command) to show once."""
    record = await get_record(c, caller, agent_id, access.AGENTS_MANAGE)
    token = make_token(c.ca.ca_sha256)
    expires_at = c.clock() + c.config.token_ttl
    await c.agents.rotate_token(record.id, token_hash(token), expires_at)
    await c.gateway.disconnect(record.id, CloseCode.UNAUTHORIZED, "enrolment token rotated")
    await c.audit.add(
        c.clock(), caller.username, "agent.rotate_token", record.id, {"name": record.name}, host=record.id
    )
    return await get_record(c, caller, record.id), enrolment(c, token, expires_at)
