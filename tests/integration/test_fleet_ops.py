"""Fleet operations through the server: fan-out lists, actions, logs, stats, exec, dashboard, tags."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fleet import Engine, Fleet, wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online

IMAGE = "local/busybox:1"


@dataclass
class Mesh:
    server: ServerProc
    agents: list[AgentProc]
    engines: list[Engine]  # engines[0] is the server's `local`, engines[i] backs agents[i-1]

    def host_id(self, index: int) -> str:
        if index == 0:
            return "local"
        agent_id = self.agents[index - 1].agent_id
        assert agent_id
        return agent_id


@pytest.fixture
def mesh(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> Iterator[Mesh]:
    """`local` on engine 0 plus three agents on engines 1-3."""
    server = server_factory(docker_host=fleet.engine(0).docker_host)
    agents = [agent_factory(server, f"host-{i}", engine=i) for i in (1, 2, 3)]
    for a in agents:
        assert a.agent_id
        wait_online(server, a.agent_id)
    wait_for(lambda: server.api.host("local"), 15, message="local host never appeared")
    return Mesh(server, agents, [fleet.engine(i) for i in range(4)])


def run(engine: Engine, name: str, *cmd: str, labels: dict[str, str] | None = None) -> str:
    args = ["run", "-d", "--network", "none", "--name", name]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    return engine.docker(*args, IMAGE, *cmd).stdout.strip()


def state(engine: Engine, name: str) -> str:
    return engine.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_fanout_lists_every_host_with_a_host_column_and_filters(mesh: Mesh) -> None:
    api = mesh.server.api
    for i, engine in enumerate(mesh.engines):
        run(
            engine,
            f"web-{i}",
            "sleep",
            "1000",
            labels={"com.docker.compose.project": "shop", "com.docker.compose.service": f"svc{i % 2}"},
        )
        engine.docker("volume", "create", "--label", "com.docker.compose.project=shop", f"data-{i}")
        engine.docker("network", "create", "--internal", f"net-{i}")
    # Changed behind the server's back: the lists follow the engines' events (docs/inventory.md).
    for kind, names in (("containers", "web"), ("volumes", "data"), ("networks", "net")):
        wanted = {(mesh.host_id(i), f"{names}-{i}") for i in range(4)}
        wait_for(
            lambda kind=kind, wanted=wanted: (
                wanted <= {(r["host"]["id"], r["name"]) for r in api.get(f"/api/v1/{kind}")["items"]}
            ),
            20,
            message=f"{kind} never reached the inventory",
        )
    result = api.get("/api/v1/containers")
    assert {h["status"] for h in result["hosts"]} == {"ok"}
    assert len(result["hosts"]) == 4
    names = {(row["host"]["id"], row["name"]) for row in result["items"]}
    assert names == {(mesh.host_id(i), f"web-{i}") for i in range(4)}
    row = result["items"][0]
    for key in ("id", "name", "image", "state", "status", "stack"):
        assert key in row
    assert all(r["stack"] == "shop" for r in result["items"])
    order = [(r["host"]["name"], r["name"]) for r in result["items"]]
    assert order == sorted(order)

    one = api.get(f"/api/v1/containers?host={mesh.host_id(2)}")
    assert [r["name"] for r in one["items"]] == ["web-2"]
    assert [h["id"] for h in one["hosts"]] == [mesh.host_id(2)]

    api.call("PUT", f"/api/v1/hosts/{mesh.host_id(3)}/tags", {"tags": ["prod", "eu-west-1"]})
    tagged = api.get("/api/v1/containers?host=tag:prod")
    assert [r["name"] for r in tagged["items"]] == ["web-3"]

    volumes = api.get("/api/v1/volumes")["items"]
    assert {(v["host"]["id"], v["name"]) for v in volumes} >= {
        (mesh.host_id(i), f"data-{i}") for i in range(4)
    }
    assert all("driver" in v and "stack" in v for v in volumes)
    networks = api.get("/api/v1/networks")["items"]
    assert {(n["host"]["id"], n["name"]) for n in networks} >= {
        (mesh.host_id(i), f"net-{i}") for i in range(4)
    }
    images = api.get("/api/v1/images")["items"]
    assert {img["host"]["id"] for img in images if IMAGE in img["tags"]} == {
        mesh.host_id(i) for i in range(4)
    }
    assert all(isinstance(img["size"], int) for img in images)
    stacks = api.get("/api/v1/stacks")["items"]
    assert {(s["host"]["id"], s["name"], s["running"], s["total"]) for s in stacks} == {
        (mesh.host_id(i), "shop", 1, 1) for i in range(4)
    }
    status, body = api.call("GET", "/api/v1/containers?host=nope")
    assert status == 404
    assert body["error"]["code"] == "host_not_found"


def test_a_frozen_engine_costs_only_its_deadline(mesh: Mesh, agent_factory: Callable[..., AgentProc]) -> None:
    fifth = agent_factory(mesh.server, "host-4", engine=4)
    assert fifth.agent_id
    wait_online(mesh.server, fifth.agent_id)
    frozen = mesh.engines[2]
    frozen.freeze()
    try:
        started = time.monotonic()
        # The live fan-out (?fresh=1); from the inventory a frozen engine costs nothing at all
        # (tests/integration/test_inventory.py).
        result = mesh.server.api.get("/api/v1/containers?timeout=2&fresh=1")
        elapsed = time.monotonic() - started
        # A hung engine is not a dead host: its agent keeps beating past the 2.5 s silence limit.
        time.sleep(max(0.0, 4.0 - (time.monotonic() - started)))
        still = mesh.server.api.get(f"/api/v1/agents/{mesh.host_id(2)}")
    finally:
        frozen.thaw()
    assert still["status"] == "online"
    assert "silent" not in mesh.server.log_text()
    outcomes = {h["id"]: h["status"] for h in result["hosts"]}
    assert len(outcomes) == 5
    assert outcomes.pop(mesh.host_id(2)) == "timeout"
    assert set(outcomes.values()) == {"ok"}
    assert elapsed < 2 + 1.0, elapsed  # the deadline is a guarantee, not a benchmark
    # The frozen host answers again once thawed: nothing was left wedged.
    live = "/api/v1/containers?fresh=1"
    wait_for(lambda: all(h["status"] == "ok" for h in mesh.server.api.get(live)["hosts"]), 15)


def test_container_actions_on_a_remote_host(mesh: Mesh) -> None:
    engine, host = mesh.engines[1], mesh.host_id(1)
    run(engine, "worker", "sleep", "1000")
    api = mesh.server.api
    base = f"/api/v1/hosts/{host}/containers/worker"
    api.post(f"{base}/stop")
    assert state(engine, "worker") == "exited"
    api.post(f"{base}/start")
    assert state(engine, "worker") == "running"
    started_at = engine.docker("inspect", "-f", "{{.State.StartedAt}}", "worker").stdout
    api.post(f"{base}/restart")
    assert engine.docker("inspect", "-f", "{{.State.StartedAt}}", "worker").stdout != started_at
    api.post(f"{base}/kill")
    assert state(engine, "worker") == "exited"
    detail = api.get(base)
    assert detail["Name"] == "/worker"
    status, _ = api.call("DELETE", base)
    assert status == 200
    assert "worker" not in engine.docker("ps", "-a", "--format", "{{.Names}}").stdout
    status, body = api.call("POST", f"{base}/start")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert "host-1" in body["error"]["message"]
    status, body = api.call("POST", "/api/v1/hosts/nope/containers/worker/start")
    assert status == 404
    assert body["error"]["code"] == "host_not_found"


def test_shell_metacharacters_are_literal(mesh: Mesh) -> None:
    marker = Path("/tmp/dm-meta-marker")
    marker.unlink(missing_ok=True)
    api = mesh.server.api
    for evil in [
        "$(touch /tmp/dm-meta-marker)",
        "`touch /tmp/dm-meta-marker`",
        "a;touch /tmp/dm-meta-marker",
    ]:
        from urllib.parse import quote

        status, body = api.call(
            "POST", f"/api/v1/hosts/{mesh.host_id(1)}/containers/{quote(evil, safe='')}/stop"
        )
        assert status in (400, 404), (evil, status, body)
    engine = mesh.engines[1]
    run(engine, "echoer", "sleep", "1000")
    out = asyncio.run(exec_ws(mesh, 1, "echoer", ["echo", "$(touch /tmp/dm-meta-marker);`id`"], tty=False))
    assert b"$(touch /tmp/dm-meta-marker);`id`" in out.output
    assert not marker.exists()
    assert engine.docker("exec", "echoer", "ls", "/tmp").stdout.strip() == ""


def test_action_on_an_offline_host_is_503_naming_it(mesh: Mesh) -> None:
    agent = mesh.agents[0]
    agent.stop()
    wait_for(lambda: mesh.server.api.host(mesh.host_id(1))["status"] == "offline", 10)  # type: ignore[index]
    status, body = mesh.server.api.call("POST", f"/api/v1/hosts/{mesh.host_id(1)}/containers/x/start")
    assert status == 503
    assert "host-1" in body["error"]["message"]
    listed = mesh.server.api.get("/api/v1/containers")
    assert {h["id"]: h["status"] for h in listed["hosts"]}[mesh.host_id(1)] == "offline"


# --- streams -----------------------------------------------------------------------------------


def auth_headers(mesh: Mesh) -> dict[str, str]:
    token = mesh.server.api.token
    assert token
    return {"Authorization": f"Bearer {token}"}


async def read_logs_until(
    mesh: Mesh,
    index: int,
    name: str,
    predicate: Callable[[str], bool],
    timeout: float,
    on_text: Callable[[str], None] | None = None,
    **query: str,
) -> str:
    url = f"{mesh.server.url}/api/v1/hosts/{mesh.host_id(index)}/containers/{name}/logs"
    text = ""
    async with aiohttp.ClientSession(headers=auth_headers(mesh)) as http:
        async with http.get(url, params=query, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            assert resp.status == 200, await resp.text()
            async for chunk in resp.content.iter_any():
                text += chunk.decode()
                if on_text:
                    on_text(text)
                if predicate(text):
                    break
    return text


def test_logs_tail_and_follow_across_a_restart_and_removal(mesh: Mesh) -> None:
    engine = mesh.engines[1]
    run(
        engine,
        "ticker",
        "sh",
        "-c",
        "i=0; while true; do echo tick-$i; echo err-$i >&2; i=$((i+1)); sleep 0.2; done",
    )
    wait_for(lambda: "tick-3" in engine.docker("logs", "ticker").stdout, 10)
    text = asyncio.run(read_logs_until(mesh, 1, "ticker", lambda t: False, 10, tail="2"))
    assert len(text.strip().splitlines()) == 2

    restarted = {"done": False}

    def restart_once(text: str) -> None:
        if "tick-5" in text and not restarted["done"]:
            restarted["done"] = True
            engine.docker("restart", "-t", "0", "ticker")

    text = asyncio.run(
        read_logs_until(
            mesh,
            1,
            "ticker",
            lambda t: t.count("tick-2\n") >= 2,
            30,
            on_text=restart_once,
            follow="1",
            tail="100",
        )
    )
    lines = text.splitlines()
    assert "err-1" in lines  # stderr is part of the stream
    # After the restart the counter starts again at 0; nothing from before is repeated.
    ticks = [line for line in lines if line.startswith("tick-")]  # stdout alone is strictly ordered
    assert ticks.count("tick-0") == 2
    first_run = ticks[: ticks.index("tick-0", 1)]
    assert first_run == [f"tick-{i}" for i in range(len(first_run))]

    def remove_soon(text: str) -> None:
        if "tick-1" in text and "removed" not in restarted:
            restarted["removed"] = True
            engine.docker("rm", "-f", "ticker")

    text = asyncio.run(
        read_logs_until(mesh, 1, "ticker", lambda t: False, 30, on_text=remove_soon, follow="1")
    )
    assert "[dockmesh] container removed" in text

    status, _body = mesh.server.api.call("GET", f"/api/v1/hosts/{mesh.host_id(1)}/containers/nothere/logs")
    assert status == 404


def test_slow_log_reader_gets_every_byte_and_other_requests_stay_fast(mesh: Mesh) -> None:
    engine = mesh.engines[2]
    run(
        engine,
        "chatty",
        "sh",
        "-c",
        "i=0; while [ $i -lt 60000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
        "i=$((i+1)); done; sleep 1000",
    )
    wait_for(lambda: "line-59999" in engine.docker("logs", "--tail", "1", "chatty").stdout, 60)
    expected = engine.docker("logs", "chatty").stdout

    async def slow_reader_and_probe() -> tuple[str, list[float]]:
        url = f"{mesh.server.url}/api/v1/hosts/{mesh.host_id(2)}/containers/chatty/logs"
        probes: list[float] = []
        async with aiohttp.ClientSession(headers=auth_headers(mesh)) as http:
            async with http.get(url) as resp:
                body = b""
                async for chunk in resp.content.iter_chunked(16384):
                    body += chunk
                    if len(probes) < 3 and len(body) > 200_000 * (len(probes) + 1):
                        t0 = time.monotonic()
                        async with http.get(
                            f"{mesh.server.url}/api/v1/containers?host={mesh.host_id(2)}"
                        ) as r:
                            assert r.status == 200
                            assert (await r.json())["hosts"][0]["status"] == "ok"
                        probes.append(time.monotonic() - t0)
                    await asyncio.sleep(0.002)
        return body.decode(), probes

    body, probes = asyncio.run(slow_reader_and_probe())
    assert body == expected
    assert len(probes) == 3
    assert max(probes) < 3.0  # answered within the fan-out deadline while the log stream was throttled


@dataclass
class ExecResult:
    output: bytes
    exit_code: int | None


async def exec_ws(
    mesh: Mesh,
    index: int,
    name: str,
    cmd: list[str],
    *,
    tty: bool,
    script: list[Any] | None = None,
    until: bytes | None = None,
) -> ExecResult:
    url = f"{mesh.server.url}/api/v1/hosts/{mesh.host_id(index)}/containers/{name}/exec"
    params = [("cmd", c) for c in cmd] + [("tty", "1" if tty else "0"), ("cols", "80"), ("rows", "24")]
    output = b""
    code = None
    async with aiohttp.ClientSession(headers=auth_headers(mesh)) as http:
        async with http.ws_connect(url, params=params) as ws:
            for item in script or []:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_json(item)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    output += msg.data
                    if until and until in output:
                        break
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    control = json.loads(msg.data)
                    if control["type"] == "exit":
                        code = control["code"]
                        break
                    raise AssertionError(control)
    return ExecResult(output, code)


def test_exec_interactive_shell_with_resize_and_exit_code(mesh: Mesh) -> None:
    run(mesh.engines[3], "shell", "sleep", "1000")
    result = asyncio.run(
        exec_ws(
            mesh,
            3,
            "shell",
            ["sh"],
            tty=True,
            script=[
                {"type": "resize", "cols": 100, "rows": 40},
                b"stty size; echo hi-$((6*7))\n",
                b"exit 3\n",
            ],
        )
    )
    assert b"hi-42" in result.output
    assert b"40 100" in result.output
    assert result.exit_code == 3
    plain = asyncio.run(exec_ws(mesh, 3, "shell", ["cat"], tty=False, script=[b"piped\n", {"type": "eof"}]))
    assert plain.output == b"piped\n"
    assert plain.exit_code == 0
    # The server's own engine goes through the very same path.
    run(mesh.engines[0], "localshell", "sleep", "1000")
    local = asyncio.run(exec_ws(mesh, 0, "localshell", ["echo", "from-local"], tty=False))
    assert local.output == b"from-local\n"


def test_exec_whose_client_vanishes_leaves_no_process(mesh: Mesh) -> None:
    engine = mesh.engines[1]
    run(engine, "victim", "sleep", "1000")

    def sleepers() -> list[str]:
        ps = engine.docker("exec", "victim", "ps", "-o", "args").stdout.splitlines()
        return [line for line in ps if "4242" in line]

    async def start_and_vanish() -> None:
        url = f"{mesh.server.url}/api/v1/hosts/{mesh.host_id(1)}/containers/victim/exec"
        async with aiohttp.ClientSession(headers=auth_headers(mesh)) as http:
            ws = await http.ws_connect(url, params=[("cmd", "sleep"), ("cmd", "4242"), ("tty", "1")])
            # The process must be running on the host before the client vanishes, or nothing is tested.
            async with asyncio.timeout(15):
                while not await asyncio.to_thread(sleepers):
                    await asyncio.sleep(0.1)
            # Drop the TCP connection without a close handshake, like a closed laptop lid.
            assert ws._response.connection is not None
            ws._response.connection.transport.abort()  # type: ignore[union-attr]

    asyncio.run(start_and_vanish())

    wait_for(lambda: not sleepers(), 15, message=lambda: f"exec still running: {sleepers()}")


def test_stats_stream(mesh: Mesh) -> None:
    run(mesh.engines[1], "busy", "sh", "-c", "while true; do :; done")

    async def samples() -> list[dict[str, Any]]:
        url = f"{mesh.server.url}/api/v1/hosts/{mesh.host_id(1)}/containers/busy/stats"
        got: list[dict[str, Any]] = []
        async with aiohttp.ClientSession(headers=auth_headers(mesh)) as http:
            async with http.ws_connect(url) as ws:
                async for msg in ws:
                    got.append(json.loads(msg.data))
                    if len(got) == 3:
                        break
        return got

    got = asyncio.run(samples())
    assert all(s["mem_used"] > 0 for s in got)
    assert max(s["cpu_percent"] for s in got) > 5


def test_dashboard_totals_are_the_sum_of_the_tiles(mesh: Mesh) -> None:
    run(mesh.engines[1], "dash-a", "sleep", "1000")
    run(mesh.engines[2], "dash-b", "sleep", "1000")
    run(mesh.engines[2], "dash-c", "sleep", "1000")

    def settled() -> dict[str, Any] | None:
        dash = mesh.server.api.get("/api/v1/dashboard")
        return dash if dash["totals"]["containers_running"] >= 3 else None

    dash = wait_for(settled, 15)
    totals, tiles = dash["totals"], dash["hosts"]
    assert totals["hosts_total"] == 4
    assert totals["hosts_online"] == 4
    assert len(tiles) == 4
    for key in ("mem_used", "mem_total", "disk_used", "disk_total", "containers_running", "cpu_cores"):
        assert totals[key] == sum(t[key] for t in tiles), key
    assert totals["cpu_cores_used"] == pytest.approx(sum(t["cpu_cores_used"] for t in tiles), abs=0.01)
    assert 0 <= totals["cpu_percent"] <= 100
    assert all(t["age_s"] < 5 for t in tiles)


def test_tag_validation(mesh: Mesh) -> None:
    api, host = mesh.server.api, mesh.host_id(1)
    for bad in (["UPPER"], ["-lead"], ["x" * 33], [f"t{i}" for i in range(21)], "prod"):
        status, body = api.call("PUT", f"/api/v1/hosts/{host}/tags", {"tags": bad})
        assert status == 400, bad
    status, body = api.call("PUT", f"/api/v1/hosts/{host}/tags", {"tags": ["prod", "gpu", "prod"]})
    assert status == 200
    assert body["tags"] == ["gpu", "prod"]
    assert api.host(host)["tags"] == ["gpu", "prod"]  # type: ignore[index]
    status, _ = api.call("PUT", "/api/v1/hosts/nope/tags", {"tags": ["a"]})
    assert status == 404
