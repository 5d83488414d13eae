"""The live inventory against real engines (docs/inventory.md): engines changed behind the server's back
(`docker -H … run / rm / pull / volume create`) with the link up, with the agent stopped, and across an
agent restart; after each, the API's lists equal what the engine itself reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dockmesh.proto import FrameType
from dockmesh.proto import frames as wire
from dockmesh.proto.inventory import Names
from tests.fleet import Engine, Fleet, wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.integration.test_hostile_agent import RawAgent, good_and_raw

pytestmark = pytest.mark.docker

IMAGE = "local/busybox:1"
# Generous: the feed settles in 50 ms, but a loaded CI machine may take seconds to schedule anything.
CONVERGE = 20.0

State = dict[str, Any]


def engine_state(eng: Engine) -> State:
    """What the engine itself says: containers (id, name), images (id → tags), volume names."""
    ps = eng.docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}").stdout.split("\n")
    images: dict[str, set[str]] = {}
    for line in eng.docker("image", "ls", "--no-trunc", "--format", "{{json .}}").stdout.splitlines():
        img = json.loads(line)
        tags = images.setdefault(img["ID"].split(":", 1)[-1][:12], set())
        if img["Repository"] != "<none>" and img["Tag"] != "<none>":
            tags.add(f"{img['Repository']}:{img['Tag']}")
    volumes = set(eng.docker("volume", "ls", "-q").stdout.split())
    return {
        "containers": {(line.split()[0][:12], line.split()[1]) for line in ps if line.strip()},
        "images": images,
        "volumes": volumes,
    }


def listed(server: ServerProc, host: str, query: str = "") -> tuple[State, dict[str, dict[str, Any]]]:
    """What the API lists for `host` (and every host's outcome by id)."""
    outcomes: dict[str, dict[str, Any]] = {}
    state: State = {}
    for kind in ("containers", "images", "volumes"):
        body = server.api.get(f"/api/v1/{kind}?host={host}{query}")
        outcomes.update({h["id"]: h for h in body["hosts"]})
        rows = body["items"]
        if kind == "containers":
            state[kind] = {(r["id"], r["name"]) for r in rows}
        elif kind == "images":
            state[kind] = {r["id"]: set(r["tags"]) for r in rows}
        else:
            state[kind] = {r["name"] for r in rows}
    return state, outcomes


def converge(server: ServerProc, host: str, eng: Engine, what: str) -> State:
    """Wait until the API's lists for `host` equal the engine's; the last listing when they do."""
    seen: list[State] = []

    def equal() -> bool:
        state, outcomes = listed(server, host)
        seen[:] = [state]
        return outcomes[host]["status"] == "ok" and state == engine_state(eng)

    wait_for(
        equal,
        CONVERGE,
        interval=0.1,
        message=lambda: f"{what}: the API lists {seen[-1] if seen else '?'}, the engine {engine_state(eng)}",
    )
    return seen[-1]


@pytest.fixture
def edge(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> tuple[ServerProc, AgentProc, Engine]:
    server = server_factory(docker_host=fleet.engine(0).docker_host)
    agent = agent_factory(server, "edge", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    return server, agent, fleet.engine(1)


def run(eng: Engine, name: str) -> str:
    out = eng.docker("run", "-d", "--network", "none", "--name", name, IMAGE, "sleep", "600").stdout
    return out.strip()[:12]


def test_lists_follow_the_engine_with_the_link_up_down_and_across_a_restart(
    edge: tuple[ServerProc, AgentProc, Engine], fleet: Fleet
) -> None:
    server, agent, eng = edge
    host = agent.agent_id
    assert host
    registry = fleet.open_registry()
    ref = f"{registry.addr}/dm/inventory:1"
    eng.docker("tag", IMAGE, ref)
    eng.docker("push", ref)
    eng.docker("rmi", ref)
    try:
        converge(server, host, eng, "after connect")

        # Link up: each change reaches the lists by itself.
        first = run(eng, "dm-inv-a")
        state = converge(server, host, eng, "after run")
        assert (first, "dm-inv-a") in state["containers"]
        eng.docker("volume", "create", "dm-inv-v1")
        eng.docker("pull", ref)
        state = converge(server, host, eng, "after volume create and pull")
        assert "dm-inv-v1" in state["volumes"]
        assert any(ref in tags for tags in state["images"].values())
        eng.docker("rm", "-f", "dm-inv-a")
        converge(server, host, eng, "after rm")
        known = engine_state(eng)

        # Link down: the last-known rows, marked stale, with their age; or none with stale=exclude.
        agent.stop()
        wait_for(lambda: server.api.host(host)["status"] == "offline", 20, message="agent never offline")
        second = run(eng, "dm-inv-b")
        eng.docker("volume", "create", "dm-inv-v2")
        eng.docker("rmi", ref)
        body = server.api.get(f"/api/v1/containers?host={host}")
        (outcome,) = body["hosts"]
        assert outcome["status"] == "offline"
        assert outcome["stale"] is True
        assert outcome["age_s"] >= 0
        assert {(r["id"], r["name"]) for r in body["items"]} == known["containers"]
        assert all(r["stale"] is True for r in body["items"])
        state, _ = listed(server, host)
        assert state == known
        excluded = server.api.get(f"/api/v1/volumes?host={host}&stale=exclude")
        assert excluded["items"] == []
        assert excluded["hosts"][0]["stale"] is True

        # Back: what changed while it was away shows once it reconnects.
        agent.token = None
        agent.start()
        wait_online(server, host)
        state = converge(server, host, eng, "after reconnect")
        assert (second, "dm-inv-b") in state["containers"]
        assert "dm-inv-v2" in state["volumes"]
        assert not any(ref in tags for tags in state["images"].values())

        # Across an agent restart with changes right around it.
        agent.stop()
        eng.docker("rm", "-f", "dm-inv-b")
        agent.start()
        run(eng, "dm-inv-c")
        wait_online(server, host)
        converge(server, host, eng, "after an agent restart")
    finally:
        eng.docker("rmi", ref, check=False)


def test_a_frozen_engine_still_lists_from_the_inventory_and_fresh_asks_it_live(
    edge: tuple[ServerProc, AgentProc, Engine],
) -> None:
    server, agent, eng = edge
    host = agent.agent_id
    assert host
    cid = run(eng, "dm-inv-frozen")
    converge(server, host, eng, "before the freeze")
    eng.freeze()
    try:
        body = server.api.get(f"/api/v1/containers?host={host}")
        assert body["hosts"][0]["status"] == "ok"
        assert body["hosts"][0]["stale"] is False
        assert body["hosts"][0]["age_s"] == 0
        assert (cid, "dm-inv-frozen") in {(r["id"], r["name"]) for r in body["items"]}
        live = server.api.get(f"/api/v1/containers?host={host}&fresh=1&timeout=1")
        assert live["hosts"][0]["status"] == "timeout"
        assert live["items"] == []
    finally:
        eng.thaw()


def test_the_local_host_and_bad_options(edge: tuple[ServerProc, AgentProc, Engine], fleet: Fleet) -> None:
    server, _agent, _eng = edge
    local = fleet.engine(0)
    wait_for(lambda: server.api.host("local"), 15, message="local host never appeared")
    run(local, "dm-inv-local")
    converge(server, "local", local, "local host")
    for query, code in (("stale=maybe", "invalid_stale"), ("fresh=yes", "invalid_fresh")):
        status, err = server.api.call("GET", f"/api/v1/containers?{query}")
        assert (status, err["error"]["code"]) == (400, code)


def _container(cid: str, name: str, **over: Any) -> dict[str, Any]:
    row = {"id": cid, "name": name, "image": IMAGE, "state": "running", "status": "Up", "stack": None}
    return {**row, "service": None, "created": 1, **over}


def test_a_hostile_agents_inventory_costs_only_its_own_rows(
    server: ServerProc, agent_factory: Callable[..., AgentProc]
) -> None:
    good, bad = good_and_raw(server, agent_factory)
    assert good.agent_id
    assert bad.agent_id
    bad.stop()
    raw = RawAgent(bad, server)
    try:
        raw.call(raw.connect())
        answer = raw.call(raw.hello({"hostname": "raw", "capabilities": ["inventory"]}))
        assert answer.type is FrameType.RESPONSE
        wait_online(server, bad.agent_id)
        body = {"kind": "containers", "gen": 1, "rows": [_container("0123456789ab", "pushed")], "done": True}
        raw.call(raw.send(wire.event_frame(Names.SNAPSHOT, body)))
        # The raw peer answers no request: the row can only come from what it pushed.
        wait_for(
            lambda: (
                [r["name"] for r in server.api.get(f"/api/v1/containers?host={bad.agent_id}")["items"]]
                == ["pushed"]
            ),
            10,
            message="the pushed row never showed",
        )

        evil = {
            "kind": "containers",
            "gen": 1,
            "upsert": [_container("x", "y", status="z" * 5000)],
            "remove": [],
        }
        raw.call(raw.send(wire.event_frame(Names.DELTA, evil)))

        async def resync_asked() -> dict[str, Any]:
            while True:
                frame = await raw.frame()
                if frame.type is FrameType.EVENT:
                    event = json.loads(frame.payload)
                    if event["name"] == Names.RESYNC:
                        return dict(event["body"])

        assert raw.call(resync_asked())["kinds"] == ["containers", "images", "volumes", "networks"]
        # Its copy is gone: it is asked live (and, silent, times out); the good host is untouched.
        listed = server.api.get("/api/v1/containers?timeout=1")
        outcomes = {h["id"]: h["status"] for h in listed["hosts"]}
        assert outcomes[bad.agent_id] == "timeout"
        assert outcomes[good.agent_id] == "ok"
        assert "pushed" not in {r["name"] for r in listed["items"]}
        assert "z" * 100 not in server.log_text()  # the peer's values are never logged
    finally:
        raw.close()
