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
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockmesh import __version__
from dockmesh.pki.signing import SigningKey
from dockmesh.server.artifact import artifact_name
from dockmesh.server.manifests import KEY_FILE
from tests.fleet import short_tmpdir, wait_for
from tests.integration.builds import shared
from tests.integration.harness import AgentProc, ServerProc
from tests.integration.spine import wait_online
from tests.integration.upgrade_artifacts import build_versioned

# The first test also pays for the session's two pex builds (minutes each on a loaded machine).
pytestmark = pytest.mark.timeout(1800)

OLD = "0.0.1"
ARCH = os.uname().machine
NEW_NAME = artifact_name(ARCH, __version__)
TRIAL_S = "20"


@pytest.fixture(scope="session")
def builds(request: pytest.FixtureRequest) -> Iterator[dict[str, Path]]:
    """The old build (version override) and the new one (this checkout), each built once per session.

    Outside CI, DOCKMESH_TEST_UPGRADE_BUILDS may name a dir holding both pex files from an earlier
    `build_versioned` run, to skip the two builds (minutes each) while working on these tests.
    """
    prebuilt = os.environ.get("DOCKMESH_TEST_UPGRADE_BUILDS")
    if prebuilt and os.environ.get("CI") != "true":
        base = Path(prebuilt)
        yield {"old": base / artifact_name(ARCH, OLD), "new": base / NEW_NAME, "pex_root": base / "pexroot"}
        return
    started = time.monotonic()
    # The build is shared by the run's xdist workers (read-only); where the old agent unpacks is this one's.
    # The old build first: another worker may be making the session's new one meanwhile.
    with shared(request.config, f"{ARCH}-{OLD}", lambda out: build_versioned(out, OLD)) as out:
        print(f"\nthe {OLD} agent pex was ready after {time.monotonic() - started:.0f}s")
        agent_artifacts: Path = request.getfixturevalue("agent_artifacts")
        pex_root = short_tmpdir("upg")
        try:
            yield {
                "old": out / artifact_name(ARCH, OLD),
                "new": agent_artifacts / NEW_NAME,
                "pex_root": pex_root,
            }
        finally:
            shutil.rmtree(pex_root, ignore_errors=True)


def serve(server_factory: Callable[..., ServerProc], artifact: Path | bytes) -> ServerProc:
    """A server whose artifact dir holds `artifact` (a file, or the bytes of a stand-in build)."""
    srv = server_factory(start=False)
    target = srv.base / "artifacts" / NEW_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(artifact, bytes):
        target.write_bytes(artifact)
    else:
        shutil.copy2(artifact, target)
    target.chmod(0o755)
    return srv.start()


def old_agent(
    agent_factory: Callable[..., AgentProc], server: ServerProc, builds: dict[str, Path], name: str
) -> AgentProc:
    agent = agent_factory(server, name, start=False)
    agent.program = [str(builds["old"]), "run"]
    # The artifact boots through /bin/sh and looks for python3.13 … python3.9 on the PATH; here those are
    # pyenv shims that refuse to run, so name the interpreter, as the installer does (PEX_PYTHON).
    agent.extra_env = {
        "PEX_ROOT": str(builds["pex_root"]),
        "PEX_PYTHON": sys.executable,
        "DOCKMESH_UPGRADE_TRIAL_S": TRIAL_S,
    }
    return agent.start()


def upgrade_state(server: ServerProc, host_id: str) -> dict[str, Any]:
    for item in server.api.get("/api/v1/upgrades")["items"]:
        if item["host"] == host_id:
            return dict(item)
    return {"host": host_id, "state": None}  # not enrolled yet


def wait_state(server: ServerProc, host_id: str, state: str, timeout: float = 120) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        item = upgrade_state(server, host_id)
        return item if item["state"] == state else None

    found: dict[str, Any] = wait_for(
        reached,
        timeout,
        interval=0.2,
        message=lambda: f"{host_id} never reached {state}: {upgrade_state(server, host_id)}",
    )
    return found


def wait_version(server: ServerProc, host_id: str, version: str, timeout: float = 120) -> None:
    def on() -> bool:
        host = server.api.host(host_id)
        return bool(host and host["status"] == "online" and host["version"] == version)

    wait_for(
        on,
        timeout,
        interval=0.2,
        message=lambda: f"{host_id} never online on {version}: {server.api.host(host_id)}",
    )


def audit_actions(server: ServerProc, host_id: str) -> list[str]:
    return [e["action"] for e in server.api.get(f"/api/v1/audit?host={host_id}&limit=200")["entries"]]


def set_manual(server: ServerProc) -> None:
    status, body = server.api.call("PUT", "/api/v1/upgrades/policy", {"policy": "manual"})
    assert (status, body) == (200, {"policy": "manual"})


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
