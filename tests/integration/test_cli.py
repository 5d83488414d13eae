"""The `dockmesh` client CLI against a real server, agents and engines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fleet import Fleet
from tests.integration.harness import ADMIN_PASSWORD, AgentProc, ServerProc
from tests.integration.spine import wait_online

pytestmark = pytest.mark.both_engines


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
    env.update(XDG_CONFIG_HOME=str(home), DOCKMESH_PASSWORD=ADMIN_PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "dockmesh.cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_lists_acts_logs_and_execs(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    fleet: Fleet,
    tmp_path: Path,
) -> None:
    # HTTPS with the server's own certificate (bound wide; only 127.0.0.1 is dialled): the CLI pins its key.
    server = server_factory(https=True, bind="0.0.0.0")
    agent = agent_factory(server, "edge-1", engine=1)
    assert agent.agent_id
    wait_online(server, agent.agent_id)
    engine = fleet.engine(1)
    engine.docker(
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hello",
        "local/busybox:1",
        "sh",
        "-c",
        "echo hello-from-edge; sleep 1000",
    )

    out = cli(tmp_path, "containers", "ls", "--host", "all")
    assert out.returncode == 1
    assert "dockmesh login" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

    # The system roots do not know the server's own CA: verification stays on and says what to do.
    unpinned = cli(tmp_path, "login", "--url", server.url)
    assert unpinned.returncode == 1
    assert "--pin" in unpinned.stderr
    assert len(unpinned.stderr.strip().splitlines()) == 1
    pin = server.create_agent("pin-source")["https_pin"]
    wrong = cli(tmp_path, "login", "--url", server.url, "--pin", "sha256//" + "A" * 43 + "=")
    assert wrong.returncode == 1
    assert "does not match the pin" in wrong.stderr
    assert cli(tmp_path, "login", "--url", server.url, "--pin", pin).returncode == 0
    assert (tmp_path / "dockmesh" / "cli.json").stat().st_mode & 0o777 == 0o600

    listing = cli(tmp_path, "containers", "ls", "--host", "all")
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.splitlines()
    assert header.split()[:2] == ["HOST", "NAME"]
    assert any(r.split()[:2] == ["edge-1", "hello"] for r in rows)
    live = cli(tmp_path, "containers", "ls", "--fresh", "--no-stale")  # every host asked now
    assert live.returncode == 0, live.stderr
    assert any(r.split()[:2] == ["edge-1", "hello"] for r in live.stdout.splitlines())

    hosts = cli(tmp_path, "hosts")
    assert "edge-1" in hosts.stdout
    assert "online" in hosts.stdout

    logs = cli(tmp_path, "logs", agent.agent_id, "hello")
    assert logs.stdout == "hello-from-edge\n"

    ran = cli(tmp_path, "exec", agent.agent_id, "hello", "--", "sh", "-c", "cat; exit 4", stdin="piped-in\n")
    assert ran.returncode == 4
    assert ran.stdout == "piped-in\n"

    assert cli(tmp_path, "stop", agent.agent_id, "hello").returncode == 0
    assert engine.docker("inspect", "-f", "{{.State.Status}}", "hello").stdout.strip() == "exited"

    missing = cli(tmp_path, "start", agent.agent_id, "nope")
    assert missing.returncode == 1
    assert "edge-1" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    tagged = cli(tmp_path, "tag", agent.agent_id, "prod", "gpu")
    assert tagged.stdout.strip().endswith("gpu,prod")
    dash = cli(tmp_path, "dashboard")
    assert "hosts 1/1 online" in dash.stdout

    created = cli(tmp_path, "agents", "create", "next-host")
    assert "/install/agent.sh?token=" in created.stdout
    # The same command the API and the UI show: pinned to the server's key.
    command = next(line.strip() for line in created.stdout.splitlines() if "/install/agent.sh" in line)
    assert command.startswith(
        f'curl -fsSL --insecure --pinnedpubkey "{pin}" "{server.url}/install/agent.sh?token='
    )
    assert command.endswith("| sudo bash")
