"""Scope enforcement through the real server, two real agents and engines (issue 11).

A user holding only `prod-operator` (the operator's permissions, scope `prod`) walks every route of the
route tables (the OpenAPI document is checked to list the same ones) against the host outside `prod`
and its objects: each route must answer 404 (or 403 where the object is visible), or be a list that
leaves that host out. A route this walker cannot classify fails the test: a new route must be placed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from dockmesh.server.app import all_specs
from dockmesh.server.artifact import artifact_name
from dockmesh.server.openapi import openapi_path
from dockmesh.server.routes import RouteSpec
from dockmesh.server.sessions import CSRF_FIELD, SESSION_COOKIE, csrf_for, load_or_create_secret
from tests.fleet import BUSYBOX_IMAGE, Engine, Fleet, wait_for
from tests.integration.harness import AgentProc, Api, ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.both_engines, pytest.mark.docker]

OPERATOR = [
    "containers.exec",
    "containers.manage",
    "containers.view",
    "hosts.view",
    "stacks.deploy",
    "stacks.view",
]
PASSWORD = "pat-password-1"
STACK = f"""\
services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
"""

# Routes that need no login (health, the login itself, the installer, static files): listed by name, so
# a new unauthenticated route fails the walk until someone decides it belongs here.
PUBLIC = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/install/agent.sh"),
    ("GET", "/install/agent/{arch}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/static/{path:.+}"),
    ("GET", "/favicon.ico"),
}
# Ending the walker's own session would log it out half-way; logging out touches no host.
SESSION_END = {("POST", "/api/v1/auth/logout"), ("POST", "/logout")}
# Not about one host: fleet-wide counters for Prometheus, only for a caller who sees every host.
GLOBAL_READ = {("GET", "/metrics")}


@dataclass
class Scoped:
    server: ServerProc
    admin: Api
    user: Api
    user_id: int
    prod: str  # host id of the agent tagged prod
    prod_agent: AgentProc
    other: str  # host id of the other agent
    other_name: str
    engines: dict[str, Engine]
    deploy_id: str  # a deploy of stack `shop` on the other host
    drain_id: str  # a drain of the other host (to nowhere: it only cordons it and skips `shop`)
    rollout_id: str  # a rollout over both hosts (both already on the server's version: nothing offered)


@pytest.fixture
def scoped(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> Scoped:
    server = server_factory()
    prod = agent_factory(server, "prod-1", engine=1)
    other = agent_factory(server, "other-1", engine=2)
    assert prod.agent_id
    assert other.agent_id
    for agent in (prod, other):
        assert agent.agent_id
        wait_online(server, agent.agent_id)
    admin = server.api
    assert admin.call("PUT", f"/api/v1/hosts/{prod.agent_id}/tags", {"tags": ["prod"]})[0] == 200
    for engine, suffix in ((fleet.engine(1), "prod"), (fleet.engine(2), "other")):
        engine.docker(
            "run", "-d", "--network", "none", "--name", f"c-{suffix}", BUSYBOX_IMAGE, "sleep", "600"
        )
        engine.docker("volume", "create", f"v-{suffix}")
        engine.docker("network", "create", "--internal", f"n-{suffix}")
    assert admin.call("PUT", "/api/v1/stacks/shop", {"compose": STACK})[0] in (200, 201)
    status, body = admin.call("POST", "/api/v1/stacks/shop/deploy", {"host": other.agent_id})
    assert status == 202, body
    deploy_id = str(body["id"])
    wait_for(
        lambda: admin.get(f"/api/v1/deploys/{deploy_id}")["state"] in ("done", "failed"),
        120,
        interval=0.2,
        message="the setup deploy never settled",
    )
    # The lists answer from the hosts' inventories, which follow the engines' events: wait until they have.
    wait_for(
        lambda: {"c-prod", "c-other"} <= {r["name"] for r in admin.get("/api/v1/containers")["items"]},
        20,
        message="the containers never reached the inventory",
    )
    status, drained = admin.call(
        "POST", f"/api/v1/hosts/{other.agent_id}/drain", {"destinations": "name:nowhere"}
    )
    assert status == 202, drained
    rollout_id = start_rollout(server)
    role = admin.post(
        "/api/v1/roles", {"name": "prod-operator", "permissions": OPERATOR, "scope": "prod"}, expect=201
    )
    assert role["scope"] == "prod"
    user = admin.post(
        "/api/v1/users", {"username": "pat", "password": PASSWORD, "roles": ["prod-operator"]}, expect=201
    )
    status, login = Api(server.url).call(
        "POST", "/api/v1/auth/login", {"username": "pat", "password": PASSWORD}
    )
    assert status == 200, login
    return Scoped(
        server,
        admin,
        Api(server.url, login["token"]),
        int(user["id"]),
        prod.agent_id,
        prod,
        other.agent_id,
        "other-1",
        {prod.agent_id: fleet.engine(1), other.agent_id: fleet.engine(2)},
        deploy_id,
        str(drained["id"]),
        rollout_id,
    )


def start_rollout(server: ServerProc) -> str:
    """A rollout over every agent: they run the server's version, so both are `current` and nothing is
    offered; a stand-in artifact only makes the server able to offer one."""
    (server.base / "artifacts" / artifact_name(os.uname().machine)).write_bytes(b"#!/bin/sh\nexit 3\n")
    assert server.api.call("PUT", "/api/v1/upgrades/policy", {"policy": "manual"})[0] == 200
    status, rollout = server.api.call("POST", "/api/v1/upgrades/rollouts", {"waves": ["100%"]})
    assert status == 201, rollout
    assert sorted(h["state"] for h in rollout["waves"][0]["hosts"]) == ["current", "current"]
    return str(rollout["id"])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def page(s: Scoped, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    """A page request with the user's session cookie (and the form's CSRF field on a POST)."""
    token = s.user.token
    assert token
    data = None
    if method == "POST":
        secret = load_or_create_secret(s.server.data_dir)
        fields = {**(form or {}), CSRF_FIELD: csrf_for(secret, token)}
        data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(s.server.url + path, data=data, method=method)
    req.add_header("Cookie", f"{SESSION_COOKIE}={token}")
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def first_event(s: Scoped, path: str) -> tuple[int, str]:
    """A server-sent event stream's status and its first event (the stream itself never ends)."""
    token = s.user.token
    assert token
    req = urllib.request.Request(s.server.url + path)
    req.add_header("Cookie", f"{SESSION_COOKIE}={token}")
    try:
        with _OPENER.open(req, timeout=30) as resp:
            lines = []
            while line := resp.readline().decode():
                if not line.strip():
                    break
                lines.append(line)
            return resp.status, "".join(lines)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def ws_status(s: Scoped, path: str) -> int:
    """The HTTP status a WebSocket upgrade gets (101 if it was accepted)."""

    async def attempt() -> int:
        headers = {"Authorization": f"Bearer {s.user.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            try:
                async with http.ws_connect(s.server.url + path) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    return asyncio.run(attempt())


def fill(path: str, s: Scoped) -> str:
    """The path with its parameters pointing at the other host and its objects."""
    values = {
        "host": s.other,
        "container": "c-other",
        "number": "1",
        "token": "0000",
        "image:.+": BUSYBOX_IMAGE,
    }
    out = path
    if path.startswith(("/api/v1/agents/", "/agents/", "/api/v1/hosts/{id}", "/hosts/{id}")):
        out = out.replace("{id}", s.other)
    elif path.startswith(("/api/v1/deploys/", "/deploys/")):
        out = out.replace("{id}", s.deploy_id)
    elif path.startswith(("/api/v1/drains/", "/drains/")):
        out = out.replace("{id}", s.drain_id)
    elif path.startswith(("/api/v1/upgrades/rollouts/", "/upgrades/rollouts/")):
        out = out.replace("{id}", s.rollout_id)
    elif path.startswith(("/api/v1/migrations/", "/migrations/")):
        out = out.replace("{id}", "0" * 32)  # none is visible: an unknown id and a hidden one look alike
    elif path.startswith(("/api/v1/users/", "/users/")):
        out = out.replace("{id}", str(s.user_id))
    elif "/networks/{id}" in path:
        out = out.replace("{id}", "n-other")
    elif path.startswith(("/api/v1/registries/", "/registries/")):
        out = out.replace("{id}", "1")  # refused before the id is looked up: the permission is global
    if "/volumes/{name}" in path:
        out = out.replace("{name}", "v-other")
    elif path.startswith(("/api/v1/stacks/", "/stacks/")):
        out = out.replace("{name}", "shop")
    elif path.startswith(("/api/v1/roles/", "/roles/")):
        out = out.replace("{name}", "prod-operator")
    for key, value in values.items():
        out = out.replace("{" + key + "}", urllib.parse.quote(value, safe=""))
    assert "{" not in out, f"the walker cannot fill {path}: teach fill() its parameters"
    return out


def hides_other(s: Scoped, text: str) -> bool:
    return s.other not in text and s.other_name not in text


def expect(spec: RouteSpec, s: Scoped) -> str | None:
    """What the user must get on this route, or None when the walker cannot tell (the test fails)."""
    key = (spec.method, spec.path)
    path = spec.path
    if key in PUBLIC or key in SESSION_END:
        return "skip"
    if key in GLOBAL_READ:
        return "403"
    if path.startswith(("/api/v1/users", "/api/v1/roles", "/users", "/roles")):
        return "403"  # administration: the user holds no users.manage
    if path.startswith(("/api/v1/registries", "/registries")):
        return "403"  # credentials: registries.manage is global, the user's role covers only prod
    if path.startswith(("/api/v1/audit", "/audit")):
        return "403"  # the audit log is for administrators
    if key in {("POST", "/api/v1/agents"), ("GET", "/agents/new"), ("POST", "/agents/new")}:
        return "403"  # enrolling needs agents.manage on every host
    if key == ("PUT", "/api/v1/upgrades/policy"):
        return "403"  # the fleet's upgrade policy needs agents.manage on every host
    if path.startswith(("/api/v1/upgrades/rollouts", "/upgrades/rollouts")) and spec.method == "POST":
        return "403"  # starting or cancelling a rollout needs agents.manage, which the user holds nowhere
    if key == ("GET", "/api/v1/upgrades/rollouts/{id}"):
        return "record"  # visible through the prod host it covers; the other host's row is left out
    if key == ("GET", "/lists/events"):
        return "first event"  # an endless event stream: its first event names the hosts it will watch
    if "{" not in path and spec.method == "GET":
        return "list"  # a list or a page of lists: the other host must not be in it
    if "{host}" in path or ("{id}" in path and path.startswith(("/api/v1/hosts/", "/hosts/", "/agents/"))):
        return "404"
    if path.startswith(
        (
            "/api/v1/agents/{id}",
            "/api/v1/deploys/{id}",
            "/deploys/{id}",
            "/api/v1/drains/{id}",
            "/drains/{id}",
            "/api/v1/migrations/",
            "/migrations/",
        )
    ):
        return "404"
    if "host" in spec.query or (spec.body and "host" in spec.body.get("properties", {})):
        return "404 host"  # names the host in the query or the body
    if path.startswith("/stacks/{name}/") and spec.method == "POST":
        if path.rsplit("/", 1)[1] in ("deploy", "stop", "start", "remove", "migrate"):
            return "404 host"
        if path.endswith("/delete"):
            return "409 hidden"  # deployed on the other host: refused, without naming it
        if path.endswith("/edit"):
            return "record"
    if path.startswith(("/api/v1/stacks/{name}", "/stacks/{name}", "/stacks/_new")):
        return "record"  # a stack record is not bound to a host; its deploys elsewhere are hidden
    if spec.method == "POST" and "host" in spec.query:
        return "404 host"
    return None


def sample_body(spec: RouteSpec, s: Scoped) -> dict[str, Any] | None:
    """A valid body for the route (its required fields, and `host`), so the walk reaches the scope check
    rather than stopping at validation; None if a required field is one the walker does not know."""
    values: dict[str, Any] = {
        "host": s.other,
        "name": "dm-walk",
        "image": BUSYBOX_IMAGE,
        "dry_run": True,
        "compose": STACK,
        "tags": ["walk"],
        "username": "walker",
        "password": "walker-password",
        "permissions": ["hosts.view"],
        "url": "127.0.0.1:5000",
        "policy": "manual",
        "destinations": "all",
        "waves": ["100%"],
    }
    schema = spec.body or {}
    props = schema.get("properties", {})
    body: dict[str, Any] = {}
    for field in schema.get("required", []):
        if field not in values:
            return None
        body[field] = values[field]
    if "host" in props:
        body["host"] = s.other
    return body


def call(s: Scoped, spec: RouteSpec, path: str, body: dict[str, Any] | None) -> tuple[int, str]:
    if spec.websocket:
        return ws_status(s, path), ""
    if spec.tag == "web":
        return page(s, spec.method, path, {k: str(v) for k, v in (body or {}).items()})
    status, raw = s.user.call(spec.method, path, body, raw=True)
    return status, raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def test_every_route_hides_the_out_of_scope_host(scoped: Scoped) -> None:
    s = scoped
    specs = all_specs()
    document = s.admin.get("/api/openapi.json")
    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert listed == {(spec.method, openapi_path(spec.path)) for spec in specs}
    assert any(spec.websocket for spec in specs)

    unclassified: list[str] = []
    wrong: list[str] = []
    walked = 0
    for spec in specs:
        verdict = expect(spec, s)
        name = f"{spec.method} {spec.path}"
        if verdict is None:
            unclassified.append(name)
            continue
        if verdict == "skip":
            continue
        walked += 1
        path = fill(spec.path, s)
        body: dict[str, Any] | None = None
        if spec.method in ("POST", "PUT", "PATCH"):
            body = sample_body(spec, s)
            if body is None:
                unclassified.append(f"{name}: a body field the walker has no value for")
                continue
        if verdict == "404 host" and "host" in spec.query:
            path += ("&" if "?" in path else "?") + "host=" + s.other
        if spec.tag == "web" and spec.method == "POST":
            body = {"host": s.other} if verdict == "404 host" else {"compose": STACK}
        status, text = first_event(s, path) if verdict == "first event" else call(s, spec, path, body)
        if verdict in ("404", "404 host"):
            ok = status == 404
        elif verdict == "403":
            ok = status == 403
        elif verdict == "409 hidden":
            # The page shows the refusal on the stack page (200), the API as a 409; neither names the host.
            ok = status == (200 if spec.tag == "web" else 409) and hides_other(s, text)
        elif verdict == "list":
            ok = status == 200 and hides_other(s, text)
            if ok and spec.tag != "web" and "host" in spec.query:
                # Named explicitly, the other host is a 404 like an unknown one.
                ok = call(s, spec, f"{path}?host={s.other}", None)[0] == 404
        elif verdict == "first event":
            ok = status == 200 and hides_other(s, text) and s.prod in text
        elif verdict == "ok":
            ok = status == 200
        else:  # record
            ok = status < 400 and hides_other(s, text)
        if not ok:
            wrong.append(f"{name} ({verdict}) -> {status}: {text[:200]}")
    assert not unclassified, f"routes the walker cannot classify (place them in expect()): {unclassified}"
    assert not wrong, "\n".join(wrong)
    assert walked > 60
    # Nothing the walk asked for happened on the other host.
    engine = s.engines[s.other]
    assert engine.docker("inspect", "-f", "{{.State.Status}}", "c-other").stdout.strip() == "running"
    assert "v-other" in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert s.admin.get("/api/v1/stacks/shop")["name"] == "shop"


def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {str(r["host"]["id"]) for r in rows}


def test_lists_show_only_reachable_hosts_and_a_retag_applies_at_once(scoped: Scoped) -> None:
    s = scoped
    for resource in ("containers", "images", "volumes", "networks", "stacks"):
        result = s.user.get(f"/api/v1/{resource}")
        assert [h["id"] for h in result["hosts"]] == [s.prod], resource
        assert _ids(result["items"]) <= {s.prod}, resource
        assert s.user.call("GET", f"/api/v1/{resource}?host={s.other}")[0] == 404
        # The selector grammar: `not prod` selects the other host, which the user does not reach.
        assert s.user.get(f"/api/v1/{resource}?host=not%20prod")["hosts"] == []
    names = {r["name"] for r in s.user.get("/api/v1/containers")["items"]}
    assert "c-prod" in names
    assert "c-other" not in names
    assert [h["id"] for h in s.user.get("/api/v1/hosts")["items"]] == [s.prod]
    dash = s.user.get("/api/v1/dashboard")
    assert [t["id"] for t in dash["hosts"]] == [s.prod]
    assert dash["totals"]["hosts_total"] == 1
    assert [a["id"] for a in s.user.get("/api/v1/agents")["items"]] == [s.prod]
    detail = s.user.get("/api/v1/stacks/shop")
    assert s.other not in json.dumps(detail)

    # Exec, logs and stats on the other host: 404 over HTTP and WebSocket; on prod they work.
    base = f"/api/v1/hosts/{s.other}/containers/c-other"
    assert s.user.call("GET", f"{base}/logs?tail=1")[0] == 404
    assert ws_status(s, f"{base}/exec?cmd=true") == 404
    assert ws_status(s, f"{base}/stats") == 404
    assert ws_status(s, f"/api/v1/hosts/{s.prod}/containers/c-prod/stats") == 101
    assert s.user.call("GET", f"/api/v1/hosts/{s.prod}/containers/c-prod/logs?tail=1")[0] == 200

    # Effective access, as the admin sees it for the user.
    access = s.admin.get(f"/api/v1/users/{s.user_id}/access")
    assert [h["id"] for h in access["hosts"]] == [s.prod]
    assert access["hosts"][0]["permissions"] == OPERATOR
    assert access["global"] == []

    # Retag the other host `prod`: the very next request reaches it.
    assert s.admin.call("PUT", f"/api/v1/hosts/{s.other}/tags", {"tags": ["prod"]})[0] == 200
    result = s.user.get("/api/v1/containers")
    assert sorted(h["id"] for h in result["hosts"]) == sorted([s.prod, s.other])
    assert "c-other" in {r["name"] for r in result["items"]}
    assert s.user.call("GET", f"{base}/logs?tail=1")[0] == 200
    assert ws_status(s, f"{base}/stats") == 101
    # And a role change too: without containers.exec, exec on a visible host is a 403.
    s.admin.call("PATCH", "/api/v1/roles/prod-operator", {"permissions": ["containers.view", "hosts.view"]})
    assert ws_status(s, f"{base}/exec?cmd=true") == 403
    assert s.user.call("POST", f"{base}/stop")[0] == 403
    # Untagged again, out of scope again: 404.
    assert s.admin.call("PUT", f"/api/v1/hosts/{s.other}/tags", {"tags": []})[0] == 200
    assert s.user.call("POST", f"{base}/stop")[0] == 404


def test_script_token_reaches_only_its_roles(scoped: Scoped) -> None:
    s = scoped
    s.admin.post("/api/v1/roles", {"name": "all-viewer", "permissions": ["containers.view"]}, expect=201)
    s.admin.call("PATCH", f"/api/v1/users/{s.user_id}", {"roles": ["prod-operator", "all-viewer"]})
    made = s.admin.post(
        f"/api/v1/users/{s.user_id}/tokens", {"name": "ci", "roles": ["prod-operator"]}, expect=201
    )
    assert made["token"].startswith("dmt_")
    script = Api(s.server.url, made["token"])
    assert [h["id"] for h in script.get("/api/v1/containers")["hosts"]] == [s.prod]
    # The user's login reaches both (all-viewer has no scope); the token only what its role does.
    assert sorted(h["id"] for h in s.user.get("/api/v1/containers")["hosts"]) == sorted([s.prod, s.other])
    listed = s.admin.get(f"/api/v1/users/{s.user_id}/tokens")["items"]
    assert [(t["name"], t["roles"]) for t in listed] == [("ci", ["prod-operator"])]
    assert "token" not in listed[0]
    refused = s.admin.call("POST", f"/api/v1/users/{s.user_id}/tokens", {"name": "x", "roles": ["admin"]})
    assert refused[0] == 400
    assert refused[1]["error"]["code"] == "role_not_held"
    assert s.admin.call("DELETE", f"/api/v1/users/{s.user_id}/tokens/{made['id']}")[0] == 204
    assert script.call("GET", "/api/v1/containers")[0] == 401
    # The first-start admin cannot lose the admin role (there is no other).
    status, body = s.admin.call("PATCH", "/api/v1/users/1", {"roles": ["viewer"]})
    assert (status, body["error"]["code"]) == (409, "last_admin")
    assert re.search("admin", json.dumps(s.admin.get("/api/v1/users/1")))
