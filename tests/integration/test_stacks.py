"""Stacks end to end: a real server (SQLite and PostgreSQL), a real agent, a real engine.

Save and validation, revisions and diffs, the issue's "done when" stack deployed to a remote host and
listed with its host and revision, a redeploy that keeps the unchanged service's container, an external
stack, a cordoned host, the server or the agent killed mid-deploy, and the CLI deploy with progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import BUSYBOX_IMAGE, Engine, Fleet, wait_for
from tests.integration.compose_stack import STACK as SHARED_STACK
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.both_engines, pytest.mark.docker]

# The shared "done when" stack, its db also logging a line for the merged-logs check.
STACK = SHARED_STACK.replace('"touch /tmp/ready', '"echo db-ready; touch /tmp/ready')
assert STACK != SHARED_STACK

# A deploy the test holds in the health phase until it creates `open` in the bind-mounted gate dir.
GATED = """\
services:
  web:
    image: {image}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    depends_on:
      gate: {{condition: service_healthy}}
  gate:
    image: {image}
    command: ["sleep", "600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: ["{gate}:/gate"]
    healthcheck:
      test: ["CMD", "test", "-f", "/gate/open"]
      interval: 1s
      timeout: 1s
      retries: 600
"""


def put(server: ServerProc, name: str, compose: str, env: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"compose": compose}
    if env is not None:
        body["env"] = env
    return server.api.call("PUT", f"/api/v1/stacks/{name}", body)


def deploy(server: ServerProc, name: str, host: str) -> str:
    status, body = server.api.call("POST", f"/api/v1/stacks/{name}/deploy", {"host": host})
    assert status == 202, body
    return str(body["id"])


def events(server: ServerProc, deploy_id: str) -> list[dict[str, Any]]:
    """The deploy's NDJSON events; the response ends with the result."""
    status, raw = server.api.call("GET", f"/api/v1/deploys/{deploy_id}/events", raw=True)
    assert status == 200, raw
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def settled(server: ServerProc, deploy_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        d = server.api.get(f"/api/v1/deploys/{deploy_id}")
        return d if d["state"] in ("done", "failed", "cancelled") else None

    result: dict[str, Any] = wait_for(
        done, timeout, interval=0.2, message=lambda: f"deploy {deploy_id} unsettled"
    )
    return result


def containers(engine: Engine, project: str) -> dict[str, str]:
    """service → container id of the project's containers on the engine (as `docker ps` sees them)."""
    out = engine.docker(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
        "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}', "--no-trunc",
    ).stdout  # fmt: skip
    return {service: cid for cid, service in (line.split() for line in out.splitlines())}


def stack_rows(server: ServerProc, name: str) -> list[dict[str, Any]]:
    return [r for r in server.api.get("/api/v1/stacks")["items"] if r["name"] == name]


@pytest.fixture
def remote(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc]
) -> tuple[ServerProc, AgentProc]:
    server = server_factory()
    agent = agent_factory(server, "edge-1", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    return server, agent


def test_save_validates_and_keeps_revisions_with_diffs(server: ServerProc) -> None:
    for bad in ("..%2Fx", "a%2Fb", "Web"):
        status, body = put(server, bad, STACK)
        assert status == 400, (bad, body)
        assert body["error"]["code"] == "invalid_name"
    status, body = put(server, "web", STACK.replace("    stop_grace_period: 1s\n", "    bogus: 1\n", 1))
    assert status == 400
    assert body["error"]["code"] == "unsupported_key"
    assert body["error"]["key"] == "services.web.bogus"
    assert body["error"]["line"] == 8
    assert server.api.call("GET", "/api/v1/stacks/web")[0] == 404  # nothing stored
    status, body = put(server, "web", "#" * (5 << 20))
    assert status == 413, body
    assert server.api.call("GET", "/api/v1/stacks/web")[0] == 404
    status, body = server.api.call("PUT", "/api/v1/stacks/web", {"compose": STACK, "extra": 1})
    assert status == 400
    assert body["error"]["code"] == "invalid_field"

    status, first = put(server, "web", STACK)
    assert status == 200, first
    assert (first["revision"], first["changed"]) == (1, True)
    assert put(server, "web", STACK)[1]["changed"] is False
    status, second = put(server, "web", STACK, "MODE=two\n")
    assert (second["revision"], second["changed"]) == (2, True)
    revisions = server.api.get("/api/v1/stacks/web/revisions")["items"]
    assert [r["number"] for r in revisions] == [2, 1]
    one = server.api.get("/api/v1/stacks/web/revisions/2")
    assert one["env"] == "MODE=two\n"
    assert one["compose"] == STACK
    assert "+MODE=two" in one["diff"]
    assert server.api.call("GET", "/api/v1/stacks/web/revisions/9")[0] == 404
    shown = server.api.get("/api/v1/stacks/web")
    assert (shown["revision"], shown["env"], shown["hosts"], shown["deployments"]) == (
        2,
        "MODE=two\n",
        [],
        [],
    )
    assert server.api.call("DELETE", "/api/v1/stacks/web")[0] == 200
    assert server.api.call("GET", "/api/v1/stacks/web")[0] == 404


def test_done_when_stack_deploys_redeploys_and_is_removed(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet
) -> None:
    server, agent = remote
    engine = fleet.engine(1)
    assert put(server, "shop", STACK)[0] == 200
    deploy_id = deploy(server, "shop", agent.agent_id or "")
    story = events(server, deploy_id)
    assert story[-1]["type"] == "result"
    assert story[-1]["state"] == "done", story[-1]
    phases = {(e.get("service"), e.get("phase")) for e in story if e["type"] == "progress"}
    assert ("db", "health") in phases
    assert ("web", "start") in phases
    first = containers(engine, "shop")
    assert set(first) == {"web", "db"}

    rows = stack_rows(server, "shop")
    assert len(rows) == 1
    row = rows[0]
    assert row["host"]["id"] == agent.agent_id
    assert row["external"] is False
    assert (row["revision"], row["deployed_revision"], row["deploy_state"]) == (1, 1, "done")
    assert (row["running"], row["total"]) == (2, 2)
    shown = server.api.get("/api/v1/stacks/shop")
    assert shown["hosts"][0]["host"] == agent.agent_id
    assert shown["deployments"][0]["id"] == deploy_id

    # One service changed: web is recreated, db keeps its container.
    assert put(server, "shop", STACK, "MODE=two\n")[1]["revision"] == 2
    again = deploy(server, "shop", agent.agent_id or "")
    assert settled(server, again)["state"] == "done"
    second = containers(engine, "shop")
    assert second["db"] == first["db"]
    assert second["web"] != first["web"]
    assert stack_rows(server, "shop")[0]["deployed_revision"] == 2

    # Logs of all services merged, each line prefixed with its service.
    status, text = server.api.call("GET", f"/api/v1/stacks/shop/logs?host={agent.agent_id}&tail=10", raw=True)
    assert status == 200, text
    assert b"db  | db-ready\n" in text

    assert server.api.call("DELETE", "/api/v1/stacks/shop")[0] == 409  # still deployed
    status, body = server.api.call("DELETE", f"/api/v1/stacks/shop?host={agent.agent_id}")
    assert status == 200, body
    assert containers(engine, "shop") == {}
    assert (
        "shop_data" in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout
    )  # volumes only when asked
    assert server.api.call("DELETE", "/api/v1/stacks/shop")[0] == 200


def test_external_stack_is_listed_and_cordoned_host_refuses(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet
) -> None:
    server, agent = remote
    engine = fleet.engine(1)
    engine.docker(
        "run", "-d", "--network", "none", "--label", "com.docker.compose.project=byhand",
        "--label", "com.docker.compose.service=app", BUSYBOX_IMAGE, "sleep", "600",
    )  # fmt: skip
    rows = stack_rows(server, "byhand")
    assert len(rows) == 1
    assert rows[0]["external"] is True
    assert rows[0]["host"]["id"] == agent.agent_id
    assert rows[0]["services"] == ["app"]

    assert put(server, "web", STACK)[0] == 200
    status, body = server.api.call("POST", f"/api/v1/hosts/{agent.agent_id}/cordon")
    assert (status, body["cordoned"]) == (200, True)
    assert [h["cordoned"] for h in server.api.get("/api/v1/hosts")["items"] if h["id"] == agent.agent_id] == [
        True
    ]
    status, body = server.api.call("POST", "/api/v1/stacks/web/deploy", {"host": agent.agent_id})
    assert status == 409
    assert body["error"]["code"] == "host_cordoned"
    assert "edge-1" in body["error"]["message"]
    status, body = server.api.call("POST", "/api/v1/stacks/web/deploy", {"host": "no-such-host"})
    assert status == 404
    assert containers(engine, "web") == {}
    assert server.api.call("POST", f"/api/v1/hosts/{agent.agent_id}/uncordon")[0] == 200
    status, body = server.api.call("POST", "/api/v1/stacks/web/deploy", {"host": agent.agent_id})
    assert status == 202, body


def gated(tmp_path: Path) -> tuple[str, Path]:
    gate = tmp_path / "gate"
    gate.mkdir()
    return GATED.format(image=BUSYBOX_IMAGE, gate=gate), gate


def test_server_killed_mid_deploy_settles_once(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, agent = remote
    engine = fleet.engine(1)
    compose, gate = gated(tmp_path)
    assert put(server, "slow", compose)[0] == 200
    deploy_id = deploy(server, "slow", agent.agent_id or "")
    wait_for(lambda: "gate" in containers(engine, "slow"), 60, message=lambda: "the gate never started")
    server.kill()
    (gate / "open").write_text("")
    server.start()
    wait_online(server, agent.agent_id or "")
    final = settled(server, deploy_id)
    assert final["state"] == "done", final
    assert set(containers(engine, "slow")) == {"web", "gate"}
    assert events(server, deploy_id)[-1]["state"] == "done"
    assert [d["state"] for d in server.api.get("/api/v1/stacks/slow")["deployments"]] == ["done"]


def test_agent_killed_mid_deploy_settles_once_and_a_retry_converges(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, agent = remote
    engine = fleet.engine(1)
    compose, gate = gated(tmp_path)
    assert put(server, "slow", compose)[0] == 200
    deploy_id = deploy(server, "slow", agent.agent_id or "")
    wait_for(lambda: "gate" in containers(engine, "slow"), 60, message=lambda: "the gate never started")
    assert agent.proc is not None
    agent.proc.kill()
    agent.start()
    wait_online(server, agent.agent_id or "")
    final = settled(server, deploy_id)
    assert final["state"] == "failed", final  # the agent journals a job cut short by a crash as failed
    assert server.api.get(f"/api/v1/deploys/{deploy_id}")["state"] == final["state"]  # one final state
    (gate / "open").write_text("")
    again = deploy(server, "slow", agent.agent_id or "")
    assert settled(server, again)["state"] == "done"
    assert set(containers(engine, "slow")) == {"web", "gate"}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_cli_put_deploy_with_progress_and_failure(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, agent = remote
    assert cli(tmp_path, "login", "--url", server.url).returncode == 0
    compose = tmp_path / "compose.yaml"
    compose.write_text(STACK.replace("    stop_grace_period: 1s\n", "    bogus: 1\n", 1))
    bad = cli(tmp_path, "stacks", "put", "shop", "-f", str(compose))
    assert bad.returncode == 1
    assert "line 8" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    compose.write_text(STACK)
    env_file = tmp_path / ".env"
    env_file.write_text("MODE=cli\n")
    saved = cli(tmp_path, "stacks", "put", "shop", "-f", str(compose), "--env-file", str(env_file))
    assert saved.returncode == 0, saved.stderr
    assert "revision 1" in saved.stdout
    out = cli(tmp_path, "stacks", "deploy", "shop", "--host", agent.agent_id or "")
    assert out.returncode == 0, out.stderr
    assert "deployed shop" in out.stdout
    assert any(line.startswith("db") and "health" in line for line in out.stdout.splitlines())
    listing = cli(tmp_path, "stacks", "ls")
    assert listing.returncode == 0
    assert any(line.split()[:2] == ["edge-1", "shop"] for line in listing.stdout.splitlines())
    history = cli(tmp_path, "stacks", "history", "shop")
    assert "done" in history.stdout

    missing = tmp_path / "missing.yaml"
    missing.write_text("services:\n  app:\n    image: 127.0.0.1:1/none/such:1\n")
    assert cli(tmp_path, "stacks", "put", "broken", "-f", str(missing)).returncode == 0
    failed = cli(tmp_path, "stacks", "deploy", "broken", "--host", agent.agent_id or "")
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("dockmesh: deploy failed:")
    assert "127.0.0.1:1/none/such" in failed.stderr  # the engine's words, naming the image
    assert len(failed.stderr.strip().splitlines()) == 1
    assert containers(fleet.engine(1), "broken") == {}


def test_cancel_stop_start_and_down_with_volumes(
    remote: tuple[ServerProc, AgentProc], fleet: Fleet, tmp_path: Path
) -> None:
    server, agent = remote
    engine = fleet.engine(1)
    host = agent.agent_id or ""
    compose, gate = gated(tmp_path)
    with_volume = compose.replace(
        '    command: ["sleep", "600"]\n', '    command: ["sleep", "600"]\n    volumes: [keep:/keep]\n', 1
    )
    assert put(server, "slow", with_volume + "volumes:\n  keep:\n")[0] == 200
    deploy_id = deploy(server, "slow", host)
    wait_for(lambda: "gate" in containers(engine, "slow"), 60, message=lambda: "the gate never started")
    status, body = server.api.call("POST", "/api/v1/stacks/slow/deploy", {"host": host})
    assert status == 409
    assert body["error"]["code"] == "deploy_in_progress"
    assert server.api.post(f"/api/v1/deploys/{deploy_id}/cancel") == {"ok": True}
    story = events(server, deploy_id)
    assert story[-1]["state"] == "cancelled"
    assert containers(engine, "slow") == {}  # a cancelled first deploy leaves nothing behind
    status, body = server.api.call("POST", f"/api/v1/deploys/{deploy_id}/cancel")
    assert status == 409
    assert body["error"]["code"] == "deploy_finished"

    (gate / "open").write_text("")
    assert settled(server, deploy(server, "slow", host))["state"] == "done"
    assert server.api.post("/api/v1/stacks/slow/stop", {"host": host}) == {"ok": True, "action": "stop"}
    states = engine.docker(
        "ps", "-a", "--filter", "label=com.docker.compose.project=slow", "--format", "{{.State}}"
    )
    assert set(states.stdout.split()) == {"exited"}
    assert server.api.post("/api/v1/stacks/slow/start", {"host": host}) == {"ok": True, "action": "start"}
    states = engine.docker(
        "ps", "--filter", "label=com.docker.compose.project=slow", "--format", "{{.State}}"
    )
    assert states.stdout.split() == ["running", "running"]
    assert "slow_keep" in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout
    status, body = server.api.call("DELETE", f"/api/v1/stacks/slow?host={host}&volumes=1")
    assert status == 200, body
    assert containers(engine, "slow") == {}
    assert "slow_keep" not in engine.docker("volume", "ls", "--format", "{{.Name}}").stdout
    assert server.api.get("/api/v1/stacks/slow")["hosts"] == []
    status, body = server.api.call("POST", "/api/v1/stacks/slow/stop", {})
    assert status == 400
    assert body["error"]["code"] == "invalid_field"
