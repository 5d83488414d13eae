"""The agent listener (TLS with our CA): enrol with a one-time token, fetch the CA, open the link."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from dockmesh.pki.csr import CsrError
from dockmesh.pki.identity import cert_to_pem
from dockmesh.server.clients import client_address, limit_key
from dockmesh.server.context import ServerContext, ctx
from dockmesh.server.errors import ApiError, json_body
from dockmesh.server.gateway import FACT_KEYS, cert_record
from dockmesh.server.routes import RouteTable
from dockmesh.server.tokens import token_hash, well_formed
from dockmesh.store.agents import AgentRecord
from dockmesh.store.audit import AuditEvent

log = logging.getLogger(__name__)
routes = RouteTable("agent-listener")


def clean_facts(value: Any) -> dict[str, Any]:
    """Keep the known host facts, as short strings; the rest of what an enrolling host says is dropped."""
    if not isinstance(value, dict):
        return {}
    return {
        k: str(value[k])[:200] for k in FACT_KEYS if k in value and isinstance(value[k], (str, int, float))
    }


async def _redeem(c: ServerContext, key: str, body: dict[str, Any], client: str) -> tuple[AgentRecord, Any]:
    """Check the token, issue the certificate, consume the token (and audit it): record and certificate."""
    token, csr = body.get("token"), body.get("csr")
    now = c.clock()
    record = None
    if isinstance(token, str) and well_formed(token):
        record = await c.agents.pending_for_token(token_hash(token), now)
    if record is None or not isinstance(token, str):
        c.limiter.fail(key)
        raise ApiError(401, "invalid_token", "the enrolment token is invalid, used or expired; rotate it")
    if not isinstance(csr, str):
        raise ApiError(400, "bad_csr", "'csr' must be a PEM certificate request")
    try:
        cert = c.ca.issue_agent_cert(csr.encode(), record.id, timedelta(seconds=c.config.cert_lifetime))
    except CsrError as exc:
        raise ApiError(400, "bad_csr", str(exc)) from None
    # The UPDATE only matches while the token is still pending: of concurrent redeemers exactly one wins.
    audit = AuditEvent(
        now, "agent", "agent.enroll", record.id, {"name": record.name, "from": client}, host=record.id
    )
    if not await c.agents.redeem(
        record.id, token_hash(token), cert_record(cert), clean_facts(body.get("host")), now, audit
    ):
        c.limiter.fail(key)
        raise ApiError(401, "invalid_token", "the enrolment token is invalid, used or expired; rotate it")
    return record, cert


@routes.route(
    "POST",
    "/enroll",
    summary="Redeem a one-time token: CSR in, client certificate out",
    auth=False,
    body={
        "type": "object",
        "properties": {"token": {"type": "string"}, "csr": {"type": "string"}, "host": {"type": "object"}},
        "required": ["token", "csr"],
    },
    responses={200: "agent_id, cert, ca, connect_url", 400: "bad CSR", 401: "bad token", 429: "slow down"},
)
async def enroll(request: web.Request) -> web.Response:
    c = ctx(request)
    key = limit_key(request, "token")
    client = str(client_address(request, c.config.trusted_proxies) or "?")
    body = await json_body(request, limit=64 * 1024)
    # Checked after the body is read; the token lookup is awaited, so attempts in flight are bounded too.
    if c.limiter.blocked(key):
        raise ApiError(
            429,
            "too_many_requests",
            "too many failed enrolments from this address; wait a minute",
            headers={"Retry-After": "60"},
        )
    if not c.limiter.enter(key):
        raise ApiError(
            429,
            "too_many_requests",
            "too many enrolments in progress from this address; retry in a second",
            headers={"Retry-After": "1"},
        )
    try:
        record, cert = await _redeem(c, key, body, client)
    finally:
        c.limiter.leave(key)
    log.info("agent %s (%s) enrolled from %s", record.id, record.name, client)
    return web.json_response(
        {
            "agent_id": record.id,
            "cert": cert_to_pem(cert).decode(),
            "ca": c.ca.ca_pem.decode(),
            "connect_url": c.config.agent_url + "/connect",
            "upgrade_public_key": c.gateway.upgrade_public_key,
        }
    )


@routes.route("GET", "/ca.crt", summary="The CA certificate (PEM), for the installer's pin check", auth=False)
async def ca_cert(request: web.Request) -> web.Response:
    return web.Response(body=ctx(request).ca.ca_pem, content_type="application/x-pem-file")


@routes.route(
    "GET",
    "/connect",
    summary="The agent link (WebSocket, client certificate required)",
    auth=False,
    websocket=True,
    responses={101: "switching protocols", 401: "no client certificate"},
)
async def connect(request: web.Request) -> web.StreamResponse:
    return await ctx(request).gateway.serve(request)
