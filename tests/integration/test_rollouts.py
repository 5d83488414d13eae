"""Upgrade rollouts in waves end to end (issue 12, docs/upgrades.md "Rollouts"): real agents on the old
build (0.0.1) against a real server and engine, driven through the CLI and the API.

- a rollout over 4 agents that halts on failure: the served build crashes, wave 1 (the canary) rolls back,
  the rollout halts, and the other 3 hosts are never offered and stay online on the old version;
- the happy path, cheaply: 2 agents, 2 waves of the real new build, the second host offline when its wave
  starts and the server restarted in between: the rollout resumes and offers it when it connects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockmesh import __version__
from tests.fleet import wait_for
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.integration.upgrade_artifacts import (
    OLD,
    TRIAL_S,
    audit_actions,
    old_agent,
    serve,
    set_manual,
    upgrade_state,
    wait_version,
)

pytestmark = pytest.mark.timeout(1800)  # the first test of a session pays for the two pex builds


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def rollout(server: ServerProc, rollout_id: str) -> dict[str, Any]:
    return dict(server.api.get(f"/api/v1/upgrades/rollouts/{rollout_id}"))


def states(view: dict[str, Any]) -> list[dict[str, str]]:
    return [{h["name"]: h["state"] for h in w["hosts"]} for w in view["waves"]]


def test_a_rollout_over_4_agents_halts_on_failure(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
    tmp_path: Path,
) -> None:
    server = serve(server_factory, b"#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
    # Under `automatic` every agent would be offered the build at connect: a rollout is refused.
    status, body = server.api.call("POST", "/api/v1/upgrades/rollouts", {"waves": ["100%"]})
    assert (status, body["error"]["code"]) == (409, "policy_automatic")
    set_manual(server)
    agents = [old_agent(agent_factory, server, builds, f"r{i}") for i in range(1, 5)]
    ids = [str(a.agent_id) for a in agents]
    for host_id in ids:
        wait_version(server, host_id, OLD)
    assert server.api.call("PUT", f"/api/v1/hosts/{ids[2]}/tags", {"tags": ["canary"]})[0] == 200

    # Bad input: one line, nothing started.
    status, body = server.api.call("POST", "/api/v1/upgrades/rollouts", {"waves": ["tag:canary", "150%"]})
    assert (status, body["error"]["code"]) == (400, "invalid_wave")
    assert "wave 2" in body["error"]["message"]
    assert server.api.get("/api/v1/upgrades/rollouts")["items"] == []

    home = tmp_path / "cli"
    assert cli(home, "login", "--url", server.url).returncode == 0
    bad = cli(home, "upgrades", "rollout", "--wave", "50%", "--hosts", "tag:nowhere")
    assert bad.returncode != 0
    assert "no agent you may upgrade" in bad.stderr

    done = cli(
        home,
        "upgrades",
        "rollout",
        "--wave",
        "tag:canary",
        "--wave",
        "50%",
        "--wave",
        "100%",
        timeout=float(TRIAL_S) + 240,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "wave 1 tag:canary" in done.stdout
    assert "the rollout halted" in done.stderr
    (listed,) = server.api.get("/api/v1/upgrades/rollouts")["items"]
    view = rollout(server, listed["id"])
    assert view["status"] == "halted"
    assert "wave 1: 1 of 1 hosts failed" in view["reason"]
    # The plan: the canary alone, then up to 50% (one more), then the rest, by name.
    assert states(view) == [
        {"r3": "rolled_back"},
        {"r1": "pending"},
        {"r2": "pending", "r4": "pending"},
    ]
    assert "exited with code 3" in view["waves"][0]["hosts"][0]["error"]
    # The others were never offered, and all four are online on the old build.
    for host_id in ids:
        wait_version(server, host_id, OLD)
    for host_id in (ids[0], ids[1], ids[3]):
        assert upgrade_state(server, host_id)["target"] is None
        assert "upgrade.offered" not in audit_actions(server, host_id)
    entries = server.api.get("/api/v1/audit?limit=200")["entries"]
    actions = {e["action"] for e in entries if e["target"] == view["id"]}
    assert actions == {"rollout.started", "rollout.halted"}
    shown = cli(home, "upgrades", "rollouts", view["id"])
    assert shown.returncode == 0
    assert "halted" in shown.stdout
    assert "r3:rolled_back" in shown.stdout
    # A halted rollout is over: cancelling it is a conflict.
    status, body = server.api.call("POST", f"/api/v1/upgrades/rollouts/{view['id']}/cancel", {})
    assert (status, body["error"]["code"]) == (409, "rollout_finished")


def test_a_rollout_resumes_after_a_restart_and_reaches_a_host_when_it_connects(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
    tmp_path: Path,
) -> None:
    server = serve(server_factory, builds["new"])
    set_manual(server)
    first = old_agent(agent_factory, server, builds, "ra")
    second = old_agent(agent_factory, server, builds, "rb")
    a, b = str(first.agent_id), str(second.agent_id)
    wait_version(server, a, OLD)
    wait_version(server, b, OLD)
    second.stop()
    wait_for(lambda: (server.api.host(b) or {}).get("status") == "offline", 30)

    home = tmp_path / "cli"
    assert cli(home, "login", "--url", server.url).returncode == 0
    started = cli(home, "upgrades", "rollout", "--wave", "50%", "--wave", "100%", "--no-wait")
    assert started.returncode == 0, started.stderr
    rollout_id = server.api.get("/api/v1/upgrades/rollouts")["items"][0]["id"]
    assert rollout_id in started.stdout

    # Wave 1 (ra) upgrades; wave 2 starts and waits for rb, which is offline.
    wait_version(server, a, __version__, timeout=float(TRIAL_S) + 180)
    wait_for(
        lambda: rollout(server, rollout_id)["wave"] == 1,
        60,
        interval=0.2,
        message=lambda: f"wave 2 never started: {rollout(server, rollout_id)}",
    )
    assert states(rollout(server, rollout_id)) == [{"ra": "done"}, {"rb": "pending"}]

    server.stop()
    server.start()
    wait_online(server, a, timeout=60)
    assert rollout(server, rollout_id)["status"] == "running"
    second.start()
    wait_version(server, b, __version__, timeout=float(TRIAL_S) + 180)
    wait_for(
        lambda: rollout(server, rollout_id)["status"] == "completed",
        60,
        interval=0.2,
        message=lambda: f"never completed: {rollout(server, rollout_id)}",
    )
    assert states(rollout(server, rollout_id)) == [{"ra": "done"}, {"rb": "done"}]
    assert server.api.get("/api/v1/upgrades")["skew"] == {__version__: 2}
    listed = cli(home, "upgrades", "rollouts")
    assert listed.returncode == 0
    assert "completed" in listed.stdout
