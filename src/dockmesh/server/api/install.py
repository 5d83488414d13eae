"""The installer script and the agent artifacts it downloads."""

from __future__ import annotations

from aiohttp import web

from dockmesh.server.clients import limit_key
from dockmesh.server.context import ctx
from dockmesh.server.errors import ApiError
from dockmesh.server.installer import render
from dockmesh.server.routes import RouteTable
from dockmesh.server.tokens import token_hash, well_formed

routes = RouteTable("install")


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
    if not well_formed(token) or c.agents.pending_for_token(token_hash(token), c.clock()) is None:
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
    )
    return web.Response(text=script, content_type="text/x-shellscript", headers={"Cache-Control": "no-store"})


@routes.route(
    "GET", "/install/agent/{arch}", summary="The agent artifact (pex) for an architecture", auth=False
)
async def artifact(request: web.Request) -> web.StreamResponse:
    name = request.match_info["arch"]
    c = ctx(request)
    if name.endswith(".sha256"):
        found = c.artifacts.get(name[: -len(".sha256")])
        if found is None:
            raise ApiError(404, "artifact_not_found", f"no agent build for {name[:-7]!r}")
        return web.Response(text=f"{found.sha256}  {found.path.name}\n")
    found = c.artifacts.get(name)
    if found is None:
        raise ApiError(404, "artifact_not_found", f"no agent build for {name!r}")
    return web.FileResponse(found.path, headers={"X-Checksum-Sha256": found.sha256})
