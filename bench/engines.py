"""Benchmarks against a real Docker engine: log throughput, exec round trips, enrol → online."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from tests.fleet import Engine, import_busybox

from bench.fleetctl import Api, Server, spawn
from bench.stats import pct
from dockmesh.docker.engine import connect
from dockmesh.docker.exec import ExecSession
from dockmesh.docker.logs import stream_logs

Result = dict[str, Any]
LOG_MB = 64
ROUNDS = 3
RTT_SAMPLES = 300


class RealHost:
    """One real dockerd with one real `dockmesh-agent` process, managed by a real server."""

    def __init__(
        self, base: Path, agent_argv: list[str] | None = None, agent_env: dict[str, str] | None = None
    ) -> None:
        """``agent_argv``: how to start the agent (default: this checkout's module; bench.soak runs a pex)."""
        self.base = base
        self.agent_argv = agent_argv or [sys.executable, "-m", "dockmesh.cli.agent"]
        self.agent_env = agent_env or {}
        base.mkdir(parents=True, exist_ok=True)
        self.engine = Engine("bench", base / "e")
        self.server = Server(base / "s", heartbeat=10.0)
        self.agent_id = ""
        self.api: Api | None = None
        self.agent: Any = None

    async def __aenter__(self) -> RealHost:
        self.engine.start()
        import_busybox(self.engine)
        self.server.start()
        self.api = Api(self.server)
        await self.api.login()
        self.enrol_online_s = await self.enrol()
        return self

    async def enrol(self) -> float:
        """Create an agent, start the production agent process, time until the server says online."""
        assert self.api
        created = await self.api.call("POST", "/api/v1/agents", {"name": f"real-{time.monotonic_ns()}"})
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
        env.update(
            DOCKMESH_ENROLL_URL=self.server.agent_url,
            DOCKMESH_TOKEN=created["token"],
            DOCKMESH_STATE_DIR=str(self.base / f"state-{created['id'][:8]}"),
            DOCKER_HOST=self.engine.docker_host,
        )
        env.update(self.agent_env)
        started = time.monotonic()
        if self.agent is not None:
            self.agent.kill()
            self.agent.wait()
        self.agent = spawn(self.agent_argv, self.base / "agent.log", env)
        self.agent_env_used = env
        while True:
            agent = await self.api.call("GET", f"/api/v1/agents/{created['id']}")
            if agent["status"] == "online":
                self.agent_id = created["id"]
                return time.monotonic() - started
            if time.monotonic() - started > 60:
                raise TimeoutError("agent never came online")
            await asyncio.sleep(0.02)

    async def restart_agent(self) -> None:
        """Kill the agent and start it again on its state (what every start after the enrolling one is)."""
        assert self.api
        self.agent.kill()
        self.agent.wait()
        env = {k: v for k, v in self.agent_env_used.items() if k != "DOCKMESH_TOKEN"}
        await self._wait_status(False)  # the killed link is noticed first, so the next "online" is new
        self.agent = spawn(self.agent_argv, self.base / "agent.log", env)
        await self._wait_status(True)

    async def _wait_status(self, online: bool) -> None:
        assert self.api
        started = time.monotonic()
        while (await self.api.call("GET", f"/api/v1/agents/{self.agent_id}"))["status"] != (
            "online" if online else "offline"
        ):
            if time.monotonic() - started > 60:
                raise TimeoutError(f"agent never became {'online' if online else 'offline'}")
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        if self.agent is not None:
            self.agent.kill()
            self.agent.wait()
        self.server.stop()
        self.engine.stop()
        if self.api:
            await self.api.close()


async def enrol_online(host: RealHost, rounds: int) -> Result:
    times = [host.enrol_online_s] + [await host.enrol() for _ in range(rounds - 1)]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dockmesh.cli.agent", "--version", stdout=asyncio.subprocess.DEVNULL
    )
    await proc.wait()
    startup = time.monotonic() - started
    return {"p50_s": pct(times, 0.5), "max_s": max(times), "process_start_s": startup, "rounds": rounds}


async def logs_and_exec(host: RealHost) -> Result:
    api = host.api
    assert api
    engine = host.engine
    name = "logbench"
    # LOG_MB of complete 100-byte lines, then idle: the engine holds them all for a non-follow read.
    line = "dockmesh benchmark log line " + "." * 71
    lines = LOG_MB * 10_000
    engine.docker(
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "local/busybox:1",
        "sh",
        "-c",
        f"yes '{line}' | head -n {lines}; sleep 100000",
    )
    docker = connect(engine.docker_host)
    try:
        waited = time.monotonic()
        while time.monotonic() - waited < 120:  # wait until the engine has every byte
            total = 0
            async for chunk in stream_logs(docker, name, follow=False):
                total += len(chunk)
            if total >= lines * 100:
                break
            await asyncio.sleep(0.5)

        url = f"{host.server.url}/api/v1/hosts/{host.agent_id}/containers/{name}/logs"
        headers = {"Authorization": f"Bearer {api.token}"}

        async def read_direct() -> tuple[int, float]:
            started = time.perf_counter()
            got = 0
            async for chunk in stream_logs(docker, name, follow=False):
                got += len(chunk)
            return got, time.perf_counter() - started

        async def read_linked(http: aiohttp.ClientSession) -> tuple[int, float]:
            started = time.perf_counter()
            got = 0
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=600)) as resp:
                async for chunk in resp.content.iter_any():
                    got += len(chunk)
            return got, time.perf_counter() - started

        probe_path = f"/api/v1/containers?host={host.agent_id}"
        during: list[float] = []

        async def probe_during(stop: asyncio.Event) -> None:
            while not stop.is_set():
                during.append(await api.timed(probe_path))
                await asyncio.sleep(0.02)

        async with aiohttp.ClientSession(headers=headers) as http:
            # Throughput: direct and linked reads alternate, ROUNDS each, nothing else running; the
            # medians are compared, so one noisy read on a shared 2-core machine does not decide it.
            direct_runs, linked_runs = [], []
            for _ in range(ROUNDS):
                direct_runs.append(await read_direct())
                linked_runs.append(await read_linked(http))
            direct_bytes, direct_s = sorted(direct_runs, key=lambda r: r[1])[ROUNDS // 2]
            linked_bytes, linked_s = sorted(linked_runs, key=lambda r: r[1])[ROUNDS // 2]
            # Then requests to the same host while one more linked read streams.
            idle_probe = [await api.timed(probe_path) for _ in range(30)]
            stop = asyncio.Event()
            prober = asyncio.create_task(probe_during(stop))
            await read_linked(http)
            stop.set()
            await prober

        exec_result = await exec_rtt(host, docker, name)
    finally:
        await docker.close()
    return {
        "bytes": direct_bytes,
        "rounds": ROUNDS,
        "direct_mb_s": direct_bytes / direct_s / 1e6,
        "linked_mb_s": linked_bytes / linked_s / 1e6,
        "ratio": (linked_bytes / linked_s) / (direct_bytes / direct_s),
        "complete": linked_bytes == direct_bytes,
        "request_idle_p50_ms": pct(idle_probe, 0.5) * 1000,
        "request_during_p50_ms": pct(during, 0.5) * 1000,
        "request_during_p99_ms": pct(during, 0.99) * 1000,
        "request_during_n": len(during),
        "exec": exec_result,
    }


async def _rtt_direct(docker: Any, name: str, n: int) -> list[float]:
    session = await ExecSession.start(docker, name, ["cat"], tty=False)
    out = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            await session.write(b"x")
            await session.read()
            out.append(time.perf_counter() - started)
    finally:
        await session.terminate()
    return out


async def _rtt_linked(host: RealHost, name: str, n: int) -> list[float]:
    assert host.api
    url = f"{host.server.url}/api/v1/hosts/{host.agent_id}/containers/{name}/exec"
    out = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {host.api.token}"}) as http:
        async with http.ws_connect(url, params=[("cmd", "cat"), ("tty", "0")]) as ws:
            for _ in range(n):
                started = time.perf_counter()
                await ws.send_bytes(b"x")
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                out.append(time.perf_counter() - started)
    return out


async def exec_rtt(host: RealHost, docker: Any, name: str) -> Result:
    n = RTT_SAMPLES
    direct = await _rtt_direct(docker, name, n)
    idle = await _rtt_linked(host, name, n)
    assert host.api
    url = f"{host.server.url}/api/v1/hosts/{host.agent_id}/containers/{name}/logs"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {host.api.token}"}) as http:

        async def flood() -> None:
            while True:
                async with http.get(url) as resp:
                    async for _chunk in resp.content.iter_any():
                        pass

        flooder = asyncio.create_task(flood())
        await asyncio.sleep(0.5)
        try:
            busy = await _rtt_linked(host, name, n)
        finally:
            flooder.cancel()
            await asyncio.gather(flooder, return_exceptions=True)
    return {
        "direct_p50_ms": pct(direct, 0.5) * 1000,
        "direct_p99_ms": pct(direct, 0.99) * 1000,
        "linked_p50_ms": pct(idle, 0.5) * 1000,
        "linked_p99_ms": pct(idle, 0.99) * 1000,
        "flood_p50_ms": pct(busy, 0.5) * 1000,
        "flood_p99_ms": pct(busy, 0.99) * 1000,
    }
