"""The installer script and the agent artifacts it downloads."""

from __future__ import annotations

from aiohttp import web

from dockmesh.host.facts import ARCH_ALIASES
from dockmesh.server.clients import limit_key
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.installer import render
from dockmesh.server.routes import RouteTable
from dockmesh.server.tokens import token_hash, well_formed

routes = RouteTable("install")

# The architectures builds exist for, and the names `uname -m` or Docker give them. Anything else is
# refused before a path is built from it.
KNOWN_ARCHES = frozenset({"x86_64", "aarch64", *ARCH_ALIASES})


@routes.route(
    "GET",
    "/install/agent.sh",
    summary="The agent install script for one enrolment token",
    auth=False,
    query=("token",),
    responses={200: "a bash script", 401: "invalid or expired token", 503: "no agent build yet"},
)
async def install_script(request: web.Request) -> web.Response:
    c = ctx(request)
    key = limit_key(request, "token")  # the bucket enrolment uses: both are token guesses
    if c.limiter.blocked(key):
        raise ApiError(429, "too_many_requests", "too many invalid tokens from this address; wait a minute")
    token = request.query.get("token", "")
    if not well_formed(token) or await c.agents.pending_for_token(token_hash(token), c.clock()) is None:
        c.limiter.fail(key)
        raise ApiError(401, "invalid_token", "the enrolment token is invalid, used or expired; rotate it")
    artifacts = [a for a in (c.artifacts.get(arch) for arch in ("x86_64", "aarch64")) if a]
    if not artifacts:
        reason = c.artifacts.build_error or "the agent build is still running; retry in a minute"
        raise ApiError(503, "artifact_unavailable", reason)
    script = render(
        server_url=c.config.public_url,
        enroll_url=c.config.agent_url,
        token=token,
        ca_sha256=c.ca.ca_sha256,
        artifacts=artifacts,
        https_pin=c.web_tls.served.pin if c.web_tls else None,
    )
    return web.Response(text=script, content_type="text/x-shellscript", headers={"Cache-Control": "no-store"})


@routes.route(
    "GET", "/install/agent/{arch}", summary="The agent artifact (pex) for an architecture", auth=False
)
async def artifact(request: web.Request) -> web.StreamResponse:
    name = request.match_info["arch"]
    arch = name.removesuffix(".sha256")
    if arch not in KNOWN_ARCHES:
        raise ApiError(404, "artifact_not_found", f"no agent build for {arch[:32]!r}")
    found = ctx(request).artifacts.get(arch)
    if found is None:
        raise ApiError(404, "artifact_not_found", f"no agent build for {arch!r}")
    if name.endswith(".sha256"):
        return web.Response(text=f"{found.sha256}  {found.path.name}\n")
    return web.FileResponse(found.path, headers={"X-Checksum-Sha256": found.sha256})
