"""`dockmesh-agent [run|enroll|doctor|status]`: argument parsing only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from dockmesh import __version__
from dockmesh.agent.config import AgentConfig, AgentConfigError
from dockmesh.agent.runner import Agent
from dockmesh.agent.state import StateDir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockmesh-agent", description="dockmesh agent: dials out to the server")
    p.add_argument("--version", action="version", version=f"dockmesh-agent {__version__}")
    p.add_argument("command", nargs="?", default="run", choices=["run", "enroll", "doctor", "status"])
    p.add_argument(
        "--enroll-url", help="server agent listener, e.g. https://server:8443 (DOCKMESH_ENROLL_URL)"
    )
    p.add_argument("--token", help="one-time enrolment token (DOCKMESH_TOKEN)")
    p.add_argument("--ca-sha256", help="CA fingerprint pin (DOCKMESH_CA_SHA256)")
    p.add_argument("--state-dir", help="state directory (DOCKMESH_STATE_DIR)")
    p.add_argument("--wait", type=float, default=0.0, help="status: wait up to N seconds for online")
    return p


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _status(config: AgentConfig, wait: float) -> int:
    state = StateDir(config.state_dir)
    started = time.time()
    deadline = time.monotonic() + wait
    while True:
        status = state.read_status()
        online = bool(status and status.get("online") and _alive(status.get("pid")))
        if online or time.monotonic() >= deadline:
            break
        if status and status.get("phase") == "fatal":
            break
        # An agent that wrote its status during this wait and then died will not come online.
        if status and float(status.get("at") or 0) >= started and not _alive(status.get("pid")):
            break
        time.sleep(0.2)
    if status is None:
        print("dockmesh-agent: no status yet (is the agent running?)")
        return 1
    phase = status.get("phase") if _alive(status.get("pid")) else "not running"
    print(
        f"dockmesh-agent: {'online' if online else phase}"
        + (f" — {status['error']}" if status.get("error") else "")
    )
    return 0 if online else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = AgentConfig.from_env(
            enroll_url=args.enroll_url, token=args.token, ca_sha256=args.ca_sha256, state_dir=args.state_dir
        )
    except AgentConfigError as exc:
        print(f"dockmesh-agent: {exc}", file=sys.stderr)
        return 2
    if args.command == "status":
        return _status(config, args.wait)
    if args.command == "doctor":
        from dockmesh.agent.doctor import diagnose  # a one-shot command: the running agent never needs it

        checks = asyncio.run(diagnose(config))
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<12} {check.detail}")
        return 0 if all(c.ok for c in checks) else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(config)
    if args.command == "enroll":
        return asyncio.run(agent.enroll_only())
    try:
        return asyncio.run(agent.run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
