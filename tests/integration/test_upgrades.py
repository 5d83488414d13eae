"""Agent self-upgrade end to end (issue 12, docs/upgrades.md): real agent processes (pex builds of two
versions) against a real server and a real engine.

The agent starts as the old build (0.0.1, built by `build_versioned`); the server serves this checkout's
build (its own version). Broken builds are small executables the server serves under the artifact's name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from dockmesh import __version__
from dockmesh.pki.signing import SigningKey
from dockmesh.server.manifests import KEY_FILE
from tests.fleet import wait_for
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.integration.upgrade_artifacts import (
    ARCH,
    NEW_NAME,
    OLD,
    TRIAL_S,
    audit_actions,
    old_agent,
    serve,
    set_manual,
    wait_state,
    wait_version,
)

# The first test also pays for the session's two pex builds (minutes each on a loaded machine).
pytestmark = pytest.mark.timeout(1800)


def test_upgrade_end_to_end_then_a_replayed_manifest_is_refused(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
) -> None:
    server = serve(server_factory, builds["new"])
    agent = old_agent(agent_factory, server, builds, "up")
    assert agent.agent_id is not None
    # Automatic policy: the old agent is offered the upgrade at its hello, and comes back on the new build.
    wait_version(server, agent.agent_id, __version__)
    done = wait_state(server, agent.agent_id, "done")
    assert done["target"] == __version__
    assert done["current"] == __version__
    wait_for(
        lambda: (agent.state_dir / "build.json").exists() and not (agent.state_dir / "trial.json").exists(),
        30,
    )
    assert json.loads((agent.state_dir / "build.json").read_text()) == {"current": f"builds/{NEW_NAME}"}
    overview = server.api.get("/api/v1/upgrades")
    assert overview["skew"] == {__version__: 1}
    assert "upgrade.offered" in audit_actions(server, agent.agent_id)

    # The same manifest again (not newer than what runs): refused, and the host stays on its build.
    server.api.post(f"/api/v1/hosts/{agent.agent_id}/upgrade")
    refused = wait_state(server, agent.agent_id, "refused")
    assert "not newer than the running" in refused["error"]
    assert "upgrade.failed" in audit_actions(server, agent.agent_id)
    wait_version(server, agent.agent_id, __version__)


def test_a_build_that_crashes_is_rolled_back(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
) -> None:
    server = serve(server_factory, b"#!/bin/sh\necho 'broken build' >&2\nexit 3\n")
    agent = old_agent(agent_factory, server, builds, "crash")
    assert agent.agent_id is not None
    rolled = wait_state(server, agent.agent_id, "rolled_back", timeout=float(TRIAL_S) + 90)
    assert "exited with code 3" in rolled["error"]
    wait_version(server, agent.agent_id, OLD)
    assert "upgrade.rolled_back" in audit_actions(server, agent.agent_id)
    assert not (agent.state_dir / "build.json").exists()  # the pointer never moved
    assert not (agent.state_dir / "builds" / NEW_NAME).exists()


def test_a_tampered_artifact_is_refused(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
) -> None:
    server = serve(server_factory, builds["new"])
    set_manual(server)
    agent = old_agent(agent_factory, server, builds, "tamper")
    assert agent.agent_id is not None
    wait_version(server, agent.agent_id, OLD)
    status, _ = server.api.call("GET", f"/install/agent/{ARCH}.sha256", raw=True)
    assert status == 200  # the server has hashed (and signs) the good bytes
    served = server.base / "artifacts" / NEW_NAME
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: swapped on the server's disk
    served.write_bytes(bytes(data))
    server.api.post(f"/api/v1/hosts/{agent.agent_id}/upgrade")
    refused = wait_state(server, agent.agent_id, "refused")
    assert "SHA-256 does not match" in refused["error"]
    wait_version(server, agent.agent_id, OLD)
    assert not (agent.state_dir / "trial.json").exists()
    assert list((agent.state_dir / "builds").glob("*")) == []  # nothing kept of the download


def test_a_manifest_signed_by_another_key_is_refused(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
) -> None:
    server = serve(server_factory, builds["new"])
    set_manual(server)
    agent = old_agent(agent_factory, server, builds, "sig")
    assert agent.agent_id is not None
    wait_version(server, agent.agent_id, OLD)
    learnt = (agent.state_dir / "upgrade.pub").read_text()
    server.stop()
    other = server.base / "other.key"
    SigningKey.load_or_create(other)
    shutil.copy2(other, server.data_dir / KEY_FILE)
    server.start()
    wait_online(server, agent.agent_id, timeout=60)
    server.api.post(f"/api/v1/hosts/{agent.agent_id}/upgrade")
    refused = wait_state(server, agent.agent_id, "refused")
    assert "signature does not verify" in refused["error"]
    assert (agent.state_dir / "upgrade.pub").read_text() == learnt  # the hello's new key did not replace it
    wait_version(server, agent.agent_id, OLD)


def test_sigkill_of_the_supervisor_mid_trial_leaves_a_runnable_agent(
    server_factory: Callable[..., ServerProc],
    agent_factory: Callable[..., AgentProc],
    builds: dict[str, Path],
) -> None:
    # A build that starts and never comes online: it records its pid and waits.
    hung = b'#!/bin/sh\necho $$ > "$DOCKMESH_STATE_DIR/hung.pid"\nexec sleep 600\n'
    server = serve(server_factory, hung)
    agent = old_agent(agent_factory, server, builds, "kill")
    assert agent.agent_id is not None
    pid_file = agent.state_dir / "hung.pid"
    wait_for(pid_file.exists, 120, interval=0.2, message="the new build never started")
    wait_for(lambda: pid_file.read_text().strip().isdigit(), 10)
    hung_pid = int(pid_file.read_text())
    assert agent.proc is not None
    agent.proc.signal(signal.SIGKILL)  # the supervisor only, as a crash or an OOM kill would
    agent.proc.wait(10)
    wait_for(lambda: not _alive(hung_pid), 10, message="the child outlived its supervisor")
    assert json.loads((agent.state_dir / "trial.json").read_text())["state"] == "trying"
    agent.start()  # what systemd's Restart=on-failure does
    rolled = wait_state(server, agent.agent_id, "rolled_back", timeout=float(TRIAL_S) + 90)
    assert "did not come online" in rolled["error"]
    wait_version(server, agent.agent_id, OLD)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, the killed supervisor, cannot reap it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
