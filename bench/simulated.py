"""Benchmarks on the simulated fleet: agents held, fan-out, dashboard, restart."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from bench.fleetctl import Api, Server, Simulators, cpu_seconds, rss_bytes
from bench.stats import pct, sample

Result = dict[str, Any]


class SimFleet:
    """A server plus `n` simulated agents in `processes` processes."""

    def __init__(
        self, base: Path, n: int, processes: int, heartbeat: float = 10.0, env: dict[str, str] | None = None
    ) -> None:
        shutil.rmtree(base, ignore_errors=True)
        self.base = base
        self.n = n
        self.processes = processes
        self.server = Server(base / "server", heartbeat=heartbeat, env=env)
        self.sims = Simulators(base / "sims")
        self.heartbeat = heartbeat
        self.api: Api | None = None
        self.agents: list[dict[str, Any]] = []
        self.baseline_rss = 0

    async def __aenter__(self) -> SimFleet:
        self.server.start()
        self.api = Api(self.server)
        await self.api.login()
        await asyncio.sleep(1.0)
        self.baseline_rss = rss_bytes(self.server.pid)
        self.agents = await self.api.create_agents(self.n)
        started = time.monotonic()
        self.sims.start(self.server, self.agents, self.processes, self.heartbeat)
        # Setup, not a figure (connect_s is): enrolment on two cores shared with other runs has been
        # ~12 a second, so allow 0.1 s per agent (1,000 s at 10,000) before calling the run failed.
        await self.api.wait_online(self.n, timeout=max(300.0, self.n * 0.1))
        self.connect_s = time.monotonic() - started
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sims.stop()
        self.server.stop()
        if self.api:
            await self.api.close()


async def held(
    base: Path,
    n: int,
    processes: int,
    settle: float,
    env: dict[str, str] | None = None,
    cpu_window: float = 10.0,
) -> Result:
    async with SimFleet(base, n, processes, env=env) as fleet:
        assert fleet.api
        await asyncio.sleep(settle)
        rss = rss_bytes(fleet.server.pid)
        cpu0 = cpu_seconds(fleet.server.pid)
        await asyncio.sleep(cpu_window)
        cpu = (cpu_seconds(fleet.server.pid) - cpu0) / cpu_window
        metrics = await fleet.api.metrics()
        return {
            "agents": n,
            "online": await fleet.api.online(),
            "connect_s": round(fleet.connect_s, 1),
            "rss_mib": round(rss / 2**20, 1),
            "rss_per_agent_kib": round((rss - fleet.baseline_rss) / n / 1024, 1),
            "loop_lag_p99_ms": round(metrics['dockmesh_event_loop_lag_seconds{quantile="0.99"}'] * 1000, 1),
            "idle_cpu_percent": round(cpu * 100, 1),
        }


async def _restarts(fleet: SimFleet, agents: int, pause: float) -> list[float]:
    """Seconds until all `agents` are back online after each of three SIGKILL + restarts."""
    assert fleet.api
    restarts = []
    for _ in range(3):
        # Agents reset their backoff after a session healthy for 10 s; restart after that, like an
        # operator would, rather than while the fleet is still reconnecting from the last one.
        await asyncio.sleep(pause)
        fleet.server.kill()
        started = time.monotonic()
        fleet.server.start()
        await fleet.api.reconnect()
        await fleet.api.wait_online(agents, 120)
        restarts.append(time.monotonic() - started)
    return [round(r, 2) for r in restarts]


async def restart(
    base: Path, n: int, processes: int, pause: float = 12.0, env: dict[str, str] | None = None
) -> list[float]:
    """Kill-restart recovery alone (for the same figure on another database engine)."""
    async with SimFleet(base, n, processes, env=env) as fleet:
        return await _restarts(fleet, n, pause)


async def fleet_ops(base: Path, n: int, processes: int, pause: float = 12.0) -> Result:
    """Fan-out at 1/100/n hosts, a stalled host, the dashboard and kill-restart recovery on one fleet."""
    async with SimFleet(base, n, processes) as fleet:
        api = fleet.api
        assert api
        ids = [a["id"] for a in fleet.agents]
        for agent_id in ids[:100]:
            await api.call("PUT", f"/api/v1/hosts/{agent_id}/tags", {"tags": ["b100"]})
        await asyncio.sleep(2.0)
        out: Result = {"hosts": n}
        one = await sample(lambda: api.fetch(f"/api/v1/containers?host={ids[0]}"), 200)
        hundred = await sample(lambda: api.fetch("/api/v1/containers?host=tag:b100"), 60)
        cpu0 = cpu_seconds(fleet.server.pid)
        everything = await sample(lambda: api.fetch("/api/v1/containers"), 30)
        server_cpu_ms = (cpu_seconds(fleet.server.pid) - cpu0) / 30 * 1000
        rows = len((await api.call("GET", "/api/v1/containers"))["items"])
        out["fanout"] = {
            "rows_all": rows,
            "server_cpu_ms_all": server_cpu_ms,
            "p50_ms": {
                "1": pct(one, 0.5) * 1000,
                "100": pct(hundred, 0.5) * 1000,
                str(n): pct(everything, 0.5) * 1000,
            },
            "p99_ms": {
                "1": pct(one, 0.99) * 1000,
                "100": pct(hundred, 0.99) * 1000,
                str(n): pct(everything, 0.99) * 1000,
            },
        }
        health = await sample(lambda: api.fetch("/api/v1/health"), 200)
        dash = await sample(lambda: api.fetch("/api/v1/dashboard"), 200)
        out["dashboard"] = {
            "p50_ms": pct(dash, 0.5) * 1000,
            "p99_ms": pct(dash, 0.99) * 1000,
            "health_p50_ms": pct(health, 0.5) * 1000,
        }

        # A stalled host answers nothing, ever. The reply streams in host order, so where the stalled
        # host sorts matters: last, only the outcomes wait for it; first, every row does.
        deadline = 1.0

        async def stalled_run(prefix: str, index: int) -> Result:
            agents = await api.create_agents(1, prefix=prefix)
            fleet.sims.start(fleet.server, agents, 1, fleet.heartbeat, stall={index}, offset=index)
            await api.wait_online(index + 1, 60)
            times = await sample(lambda: api.fetch(f"/api/v1/containers?timeout={deadline}"), 15)
            result = await api.call("GET", f"/api/v1/containers?timeout={deadline}")
            return {
                "deadline_ms": deadline * 1000,
                "p50_ms": pct(times, 0.5) * 1000,
                "p99_ms": pct(times, 0.99) * 1000,
                "timeouts": len([h for h in result["hosts"] if h["status"] == "timeout"]),
                "first_in_order": result["hosts"][0]["status"] == "timeout",
            }

        out["stalled"] = await stalled_run("zz-stalled", n)
        out["stalled_first"] = await stalled_run("a-stalled", n + 1)
        out["restart_agents"] = n + 2
        out["restart_s"] = await _restarts(fleet, n + 2, pause)
        return out
