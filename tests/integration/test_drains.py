"""Draining a host end to end: a real server, three agents on three real engines, real migrations.

The issue's two drain tests: three stacks drained to two destinations all move, the source is cordoned and
refuses a deploy; the server killed mid-drain and started again leaves every stack running on exactly one
host, none lost. Plus the dry run (a plan, nothing touched) and the CLI with its progress bar.
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
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, Api, ServerProc
from tests.integration.spine import wait_online

pytestmark = [pytest.mark.docker]

# One service and one named volume with a known file: small, quick to stop, copy and start.
STACK = f"""\
services:
  app:
    image: {BUSYBOX_IMAGE}
    command: ["sh", "-c", "test -f /data/seed || echo {{name}} > /data/seed; exec sleep 600"]
    network_mode: none
    stop_grace_period: 1s
    volumes: [data:/data]
volumes:
  data:
"""
NAMES = ("alpha", "beta", "gamma")


@pytest.fixture
def three(
    server_factory: Callable[..., ServerProc], agent_factory: Callable[..., AgentProc], fleet: Fleet
) -> tuple[ServerProc, dict[str, str], dict[str, Engine]]:
    server = server_factory()
    ids: dict[str, str] = {}
    engines: dict[str, Engine] = {}
    for number, name in enumerate(("src", "dst-1", "dst-2"), start=1):
        agent = agent_factory(server, name, engine=number)
        assert agent.agent_id
        wait_online(server, agent.agent_id)
        ids[name], engines[agent.agent_id] = agent.agent_id, fleet.engine(number)
    for name in ("dst-1", "dst-2"):
        assert server.api.call("PUT", f"/api/v1/hosts/{ids[name]}/tags", {"tags": ["dest"]})[0] == 200
    for stack in NAMES:
        status, body = server.api.call(
            "PUT", f"/api/v1/stacks/{stack}", {"compose": STACK.replace("{name}", stack)}
        )
        assert status == 200, body
        status, body = server.api.call("POST", f"/api/v1/stacks/{stack}/deploy", {"host": ids["src"]})
        assert status == 202, body
        deploy_id = body["id"]
        wait_for(
            lambda d=deploy_id: server.api.get(f"/api/v1/deploys/{d}")["state"] in ("done", "failed"),
            120,
            interval=0.2,
            message=f"deploy of {stack} never settled",
        )
        deployed = server.api.get(f"/api/v1/deploys/{deploy_id}")
        assert deployed["state"] == "done", deployed
    return server, ids, engines


def running_on(engines: dict[str, Engine], stack: str) -> list[str]:
    """The hosts whose engine runs a container of the stack."""
    out = []
    for host, engine in engines.items():
        ps = engine.docker(
            "ps", "--filter", f"label=com.docker.compose.project={stack}", "--format", "{{.Names}}"
        ).stdout.split()
        if ps:
            out.append(host)
    return out


def finished(server: ServerProc, drain_id: str, timeout: float = 300) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view: dict[str, Any] = server.api.get(f"/api/v1/drains/{drain_id}")
        return view if view["status"] != "running" else None

    result: dict[str, Any] = wait_for(
        done, timeout, interval=0.5, message=lambda: f"drain {drain_id} never ended"
    )
    return result


def test_drain_moves_three_stacks_to_two_destinations_and_cordons_the_source(
    three: tuple[ServerProc, dict[str, str], dict[str, Engine]],
) -> None:
    server, ids, engines = three
    src = ids["src"]

    # The dry run: a plan with a destination per stack, and nothing touched.
    status, planned = server.api.call(
        "POST", f"/api/v1/hosts/{src}/drain?dry_run=true", {"destinations": "dest"}
    )
    assert status == 200, planned
    assert sorted(s["stack"] for s in planned["stacks"]) == sorted(NAMES)
    sizes = [s["volume_bytes"] for s in planned["stacks"]]
    assert sizes == sorted(sizes)  # smallest first (the seed files differ by the stack's name)
    assert all(size > 0 for size in sizes)  # sized by the migration pre-flight
    assert {s["destination"]["id"] for s in planned["stacks"]} == {ids["dst-1"], ids["dst-2"]}
    assert server.api.host(src)["cordoned"] is False  # type: ignore[index]
    assert all(running_on(engines, n) == [src] for n in NAMES)

    status, bad = server.api.call(
        "POST", f"/api/v1/hosts/{src}/drain", {"destinations": "dest", "order": "random"}
    )
    assert status == 400
    assert bad["error"]["code"] == "invalid_field"

    status, started = server.api.call(
        "POST", f"/api/v1/hosts/{src}/drain", {"destinations": ["dest"], "order": "largest", "concurrency": 2}
    )
    assert status == 202, started
    status, again = server.api.call("POST", f"/api/v1/hosts/{src}/drain", {"destinations": "dest"})
    assert status == 409
    assert again["error"]["code"] == "drain_running"

    view = finished(server, started["id"])
    assert view["status"] == "done", view
    moved = sorted(m["stack"] for m in view["summary"]["moved"])
    assert moved == sorted(NAMES), [(s["stack"], s["state"], s["code"], s["message"]) for s in view["stacks"]]
    assert view["summary"]["skipped"] == []
    for name in NAMES:
        where = running_on(engines, name)
        assert len(where) == 1, (name, where)
        assert where[0] in (ids["dst-1"], ids["dst-2"])
        seed = engines[where[0]].docker(
            "run", "--rm", "--network", "none", "-v", f"{name}_data:/data", BUSYBOX_IMAGE, "cat", "/data/seed"
        )
        assert seed.stdout.strip() == name  # the volume came along
    used = {running_on(engines, n)[0] for n in NAMES}
    assert used == {ids["dst-1"], ids["dst-2"]}  # placement spread the stacks over both

    assert server.api.host(src)["cordoned"] is True  # type: ignore[index]
    status, refused = server.api.call("POST", "/api/v1/stacks/alpha/deploy", {"host": src})
    assert status == 409
    assert refused["error"]["code"] == "host_cordoned"

    actions = [e["action"] for e in server.api.get("/api/v1/audit?limit=200")["entries"]]
    assert "drain.start" in actions
    assert "drain.done" in actions
    assert actions.count("drain.stack.done") == 3
    assert "host.cordon" in actions

    # A reader who sees only the source: the destinations are hidden, the source and outcomes are not.
    server.api.post(
        "/api/v1/roles", {"name": "src-only", "permissions": ["hosts.view"], "scope": "name:src"}, expect=201
    )
    server.api.post(
        "/api/v1/users", {"username": "sam", "password": "sam-password-1", "roles": ["src-only"]}, expect=201
    )
    status, login = Api(server.url).call(
        "POST", "/api/v1/auth/login", {"username": "sam", "password": "sam-password-1"}
    )
    assert status == 200, login
    narrow = Api(server.url, login["token"]).get(f"/api/v1/drains/{started['id']}")
    assert {s["destination"]["id"] for s in narrow["stacks"]} == {"hidden"}
    assert ids["dst-1"] not in json.dumps(narrow)
    assert "dst-2" not in json.dumps(narrow)
    assert len(narrow["summary"]["moved"]) == 3

    # The NDJSON events of a finished drain: its final view, once.
    status, raw = server.api.call("GET", f"/api/v1/drains/{started['id']}/events", raw=True)
    assert status == 200
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert lines[-1]["status"] == "done"


def test_server_killed_mid_drain_leaves_every_stack_on_exactly_one_host(
    three: tuple[ServerProc, dict[str, str], dict[str, Engine]],
) -> None:
    server, ids, engines = three
    src = ids["src"]
    status, started = server.api.call(
        "POST", f"/api/v1/hosts/{src}/drain", {"destinations": "dest", "concurrency": 1}
    )
    assert status == 202, started
    drain_id = started["id"]
    wait_for(
        lambda: server.api.get(f"/api/v1/drains/{drain_id}")["current"],
        120,
        interval=0.05,
        message="no stack ever began to move",
    )
    server.kill()
    server.start()
    for host in ids.values():
        wait_online(server, host, timeout=60)
    view = finished(server, drain_id)
    assert view["status"] == "done", view
    for name in NAMES:
        where = running_on(engines, name)
        assert len(where) == 1, (name, where)  # never on two hosts, never on none
    moved = {m["stack"] for m in view["summary"]["moved"]}
    back = {m["stack"] for m in view["summary"]["rolled_back"]}
    assert moved | back == set(NAMES), view["summary"]
    for name in moved:
        assert running_on(engines, name)[0] in (ids["dst-1"], ids["dst-2"])
    for name in back:
        assert running_on(engines, name) == [src]
    assert all(s["attempts"] <= 2 for s in view["stacks"])


def test_cli_drain_dry_run_and_run_with_progress(
    three: tuple[ServerProc, dict[str, str], dict[str, Engine]], tmp_path: Path
) -> None:
    server, ids, engines = three
    home = tmp_path

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
        env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
        return subprocess.run(
            [sys.executable, "-m", "dockmesh.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    assert cli("login", "--url", server.url).returncode == 0

    dry = cli("hosts", "drain", "src", "--to", "dest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for name in NAMES:
        assert name in dry.stdout
    assert "dst-1" in dry.stdout or "dst-2" in dry.stdout
    assert all(running_on(engines, n) == [ids["src"]] for n in NAMES)

    bad = cli("hosts", "drain", "src", "--to", "dest and (", "--dry-run")
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1

    run = cli("hosts", "drain", "src", "--to", "dest", "--order", "smallest", "--concurrency", "2")
    assert run.returncode == 0, run.stderr
    assert "moved 3" in run.stdout
    assert all(len(running_on(engines, n)) == 1 for n in NAMES)
