"""Run many simulated agents in one process: `python -m bench.sim SPEC.json`.

Each one is the production `Agent` (enrolment, mTLS link, hello, heartbeats, renewal, reconnect with
backoff) serving a `CannedHost`. The spec lists {"index", "token", "state_dir", "stall"} per agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from bench.canned import CannedHost
from dockmesh.agent.backoff import Backoff
from dockmesh.agent.config import AgentConfig
from dockmesh.agent.runner import Agent
from dockmesh.server.tuning import share_tls_read_buffer


async def main(spec_path: Path) -> None:
    # Thousands of client connections per process: one TLS read buffer for all of them, as the server does.
    share_tls_read_buffer()
    spec = json.loads(spec_path.read_text())
    agents = []
    for entry in spec["agents"]:
        config = AgentConfig(
            state_dir=Path(entry["state_dir"]),
            enroll_url=spec["enroll_url"],
            token=entry.get("token"),
            heartbeat_interval=float(spec.get("heartbeat", 10.0)),
        )
        host = CannedHost(entry["index"], stall=bool(entry.get("stall")))
        agents.append(
            Agent(config, host=lambda h=host: h, backoff=Backoff(base=1.0, cap=float(spec.get("cap", 5.0))))
        )
    # A real fleet does not enrol 5,000 hosts in the same second: enrol with bounded concurrency first,
    # then ramp the connects, so the benchmark measures holding agents rather than a handshake storm
    # (each enrolment costs the server two TLS handshakes and a signature).
    slots = asyncio.Semaphore(int(spec.get("enrol_concurrency", 16)))

    async def enrol(agent: Agent) -> Agent | None:
        async with slots:
            # An agent whose enrolment failed for good (logged) is not run: its token is spent.
            return agent if await agent.enroll_only() == 0 else None

    enrolled = [a for a in await asyncio.gather(*(enrol(a) for a in agents)) if a is not None]
    if len(enrolled) < len(agents):
        logging.error("bench.sim: %d of %d agents failed to enrol", len(agents) - len(enrolled), len(agents))
    agents = enrolled
    # The fleet's connect ramp (100 a second in all by default, split over the processes): a faster
    # ramp measures a connect storm, which the restart benchmark does on purpose and the hold must not.
    rate = float(spec.get("connects_per_second", 100.0))
    tasks = []
    for i, agent in enumerate(agents):
        tasks.append(asyncio.create_task(agent.run()))
        if i % 10 == 9:
            await asyncio.sleep(10 / rate)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(Path(sys.argv[1])))
