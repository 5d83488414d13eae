"""Agents: create (token + install command), list, get, revoke, rotate the enrolment token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from dockmesh.proto import CloseCode
from dockmesh.server.api.auth import current_user
from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError, field_str, json_body
from dockmesh.server.installer import install_command
from dockmesh.server.routes import RouteTable
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller
from dockmesh.server.tokens import make_token, token_hash
from dockmesh.store.agents import AgentRecord, AgentState

routes = RouteTable("agents")


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


async def get_record(
    c: ServerContext, caller: Caller, agent_id: str, permission: str = access.HOSTS_VIEW
) -> AgentRecord:
    """The agent if visible to the caller (else 404, as unknown) and `permission` held on it (else 403).

    Reading needs only visibility; `permission` is checked when it is not `hosts.view`."""
    record = await c.agents.get(agent_id)
    if record is None or not visible(caller, record):
        raise ApiError(404, "agent_not_found", f"no agent with id {agent_id!r}")
    if permission != access.HOSTS_VIEW:
        access.check(caller, record.id, record.name, record.tags, permission)
    return record


@routes.route(
    "POST",
    "/api/v1/agents",
    summary="Create a pending agent and its one-time enrolment token",
    body={
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 64}},
        "required": ["name"],
    },
    responses={
        201: "the agent with token and install_command (shown once; pinned to the UI key when this server "
        "serves HTTPS: https_pin), install_command_plain when the certificate is publicly trusted"
    },
)
async def create_agent(request: web.Request) -> web.Response:
    user = current_user(request)
    access.require_global(user, access.AGENTS_MANAGE)
    c = ctx(request)
    body = await json_body(request)
    name = field_str(body, "name", max_len=64)
    return web.json_response(await create_pending(c, name, user.username), status=201)


async def create_pending(c: ServerContext, name: str, username: str) -> dict[str, Any]:
    """A pending agent with its one-time token (the API's answer; the web page renders the same)."""
    token = make_token(c.ca.ca_sha256)
    now = c.clock()
    expires_at = now + c.config.token_ttl
    record = await c.agents.create(name, token_hash(token), expires_at, now)
    await c.audit.add(now, username, "agent.create", record.id, {"name": name}, host=record.id)
    return {**agent_view(c, record), **enrolment(c, token, expires_at)}


@routes.route("GET", "/api/v1/agents", summary="List agents")
async def list_agents(request: web.Request) -> web.Response:
    c, user = ctx(request), current_user(request)
    items = [agent_view(c, r) for r in await c.agents.all() if visible(user, r)]
    return web.json_response({"items": items})


@routes.route("GET", "/api/v1/agents/{id}", summary="One agent", responses={200: "the agent", 404: "unknown"})
async def get_agent(request: web.Request) -> web.Response:
    c = ctx(request)
    record = await get_record(c, current_user(request), request.match_info["id"])
    return web.json_response(agent_view(c, record))


@routes.route("POST", "/api/v1/agents/{id}/revoke", summary="Revoke an agent; its live link is cut at once")
async def revoke_agent(request: web.Request) -> web.Response:
    user = current_user(request)
    c = ctx(request)
    record = await get_record(c, user, request.match_info["id"], access.AGENTS_MANAGE)
    await revoke(c, record, user.username)
    return web.json_response(agent_view(c, await get_record(c, user, record.id)))


async def revoke(c: ServerContext, record: AgentRecord, username: str) -> None:
    # Persist first: a crash between the two steps must leave the agent refused, not connected.
    await c.agents.revoke(record.id)
    await c.gateway.disconnect(record.id, CloseCode.UNAUTHORIZED, "agent revoked")
    await c.audit.add(c.clock(), username, "agent.revoke", record.id, {"name": record.name}, host=record.id)


@routes.route(
    "POST",
    "/api/v1/agents/{id}/rotate-token",
    summary="Issue a new enrolment token; the old certificate stops working",
    responses={200: "token, expiry, install_command, install_command_plain, https_pin"},
)
async def rotate_token(request: web.Request) -> web.Response:
    user = current_user(request)
    c = ctx(request)
    record = await get_record(c, user, request.match_info["id"], access.AGENTS_MANAGE)
    return web.json_response(await rotate(c, record, user.username))


async def rotate(c: ServerContext, record: AgentRecord, username: str) -> dict[str, Any]:
    """A new enrolment token for the agent; its old certificate stops working at once."""
    token = make_token(c.ca.ca_sha256)
    expires_at = c.clock() + c.config.token_ttl
    await c.agents.rotate_token(record.id, token_hash(token), expires_at)
    await c.gateway.disconnect(record.id, CloseCode.UNAUTHORIZED, "enrolment token rotated")
    await c.audit.add(
        c.clock(), username, "agent.rotate_token", record.id, {"name": record.name}, host=record.id
    )
    return enrolment(c, token, expires_at)
