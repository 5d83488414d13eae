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
from dockmesh.server.tuning import shrink_tls_read_buffer


async def main(spec_path: Path) -> None:
    # Thousands of client connections per process: keep asyncio's per-connection TLS buffer small here too.
    shrink_tls_read_buffer()
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
    # Enrolment and connects are spread a little so the server sees a realistic ramp, not one burst.
    tasks = []
    for i, agent in enumerate(agents):
        tasks.append(asyncio.create_task(agent.run()))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(Path(sys.argv[1])))
