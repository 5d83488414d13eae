"""Agent artifacts of another version, and what the upgrade and rollout tests share: the session's two
builds (`builds`, registered in conftest.py), a server serving a given build, an agent on the old one, and
waits on upgrade state (docs/upgrades.md)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockmesh import __version__
from dockmesh.host.facts import normalize_arch
from dockmesh.server.artifact import artifact_name, build
from tests.fleet import short_tmpdir, wait_for
from tests.integration.builds import shared
from tests.integration.harness import AgentProc, ServerProc


def build_versioned(out: Path, version: str) -> Path:
    """This checkout's agent artifact for this machine's arch, stamped as `version`, built into out/."""
    return build(out, normalize_arch(platform.machine()), version=version)


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
