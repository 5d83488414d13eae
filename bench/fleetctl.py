"""Start a real dockmesh server and simulator processes, and talk to the server's API."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SPAWNED: list[subprocess.Popen[bytes]] = []


def _kill_all() -> None:
    """An interrupted benchmark must not leave servers or simulators behind."""
    for proc in _SPAWNED:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


atexit.register(_kill_all)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _SPAWNED.append(proc)
    return proc


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """`dockmesh serve` as a subprocess on fixed ports, so it can be killed and restarted."""

    def __init__(
        self,
        base: Path,
        heartbeat: float = 10.0,
        docker_host: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.extra_env = env or {}
        self.http_port = free_port()
        self.agent_port = free_port()
        self.heartbeat = heartbeat
        self.docker_host = docker_host or f"unix://{base}/none.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def agent_url(self) -> str:
        return f"https://127.0.0.1:{self.agent_port}"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "artifacts").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKMESH_")}
        env.update(
            DOCKMESH_ADMIN_PASSWORD=PASSWORD,
            DOCKMESH_HEARTBEAT_INTERVAL=f"{self.heartbeat}s",
            DOCKMESH_ARTIFACT_DIR=str(self.base / "artifacts"),
            DOCKER_HOST=self.docker_host,
        )
        env.update(self.extra_env)
        argv = [
            sys.executable,
            "-m",
            "dockmesh.cli.main",
            "serve",
            "--data-dir",
            str(self.base / "data"),
            "--http",
            f"127.0.0.1:{self.http_port}",
            "--agent-listen",
            f"127.0.0.1:{self.agent_port}",
            "--public-url",
            self.url,
            "--agent-url",
            self.agent_url,
        ]
        self.proc = spawn(argv, self.base / "server.log", env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start; see " + str(self.base / "server.log"))

    def kill(self) -> None:
        if self.proc:
            kill(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc:
            kill(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Api:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        self.token: str | None = None

    async def reconnect(self) -> None:
        """A killed server leaves dead keep-alive connections in the pool: start a fresh pool."""
        await self.http.close()
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        await self.login()

    async def login(self) -> None:
        async with self.http.post(
            f"{self.server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ) as resp:
            self.token = (await resp.json())["token"]

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(method, self.server.url + path, json=body, headers=headers) as resp:
            text = await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {text[:200]!r}")
            return json.loads(text) if resp.content_type == "application/json" else text.decode()

    async def fetch(self, path: str) -> None:
        """GET to the last byte, unparsed: what is timed is the server, not this client's JSON parser."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.get(self.server.url + path, headers=headers) as resp:
            await resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"GET {path}: {resp.status}")

    async def timed(self, path: str) -> float:
        started = time.perf_counter()
        await self.call("GET", path)
        return time.perf_counter() - started

    async def metrics(self) -> dict[str, float]:
        text = await self.call("GET", "/metrics")
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        return values

    async def online(self) -> int:
        return int((await self.metrics())['dockmesh_agents{state="online"}'])

    async def create_agents(self, count: int, prefix: str = "sim") -> list[dict[str, Any]]:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> dict[str, Any]:
            async with sem:
                return dict(await self.call("POST", "/api/v1/agents", {"name": f"{prefix}-{i:05d}"}))

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def wait_online(self, count: int, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if await self.online() >= count:
                    return time.monotonic() - started
            except (aiohttp.ClientError, RuntimeError, KeyError):
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"only {await self.online()} of {count} agents online after {timeout:.0f}s")

    async def close(self) -> None:
        await self.http.close()


class Simulators:
    """Simulated agents spread over a few processes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        server: Server,
        agents: list[dict[str, Any]],
        processes: int,
        heartbeat: float,
        stall: set[int] | None = None,
        offset: int = 0,
        connects_per_second: float = 100.0,
    ) -> None:
        """Spread `agents` over `processes`; the fleet ramps its connects at `connects_per_second` in all."""
        self.base.mkdir(parents=True, exist_ok=True)
        stall = stall or set()
        groups: list[list[dict[str, Any]]] = [[] for _ in range(processes)]
        for i, agent in enumerate(agents):
            groups[i % processes].append(
                {
                    "index": offset + i,
                    "token": agent["token"],
                    "state_dir": str(self.base / f"a{offset + i:05d}"),
                    "stall": (offset + i) in stall,
                }
            )
        for n, group in enumerate(groups):
            if not group:
                continue
            spec = self.base / f"spec-{offset}-{n}.json"
            spec.write_text(
                json.dumps(
                    {
                        "enroll_url": server.agent_url,
                        "heartbeat": heartbeat,
                        "cap": 30.0,
                        "connects_per_second": connects_per_second / processes,
                        "agents": group,
                    }
                )
            )
            self.procs.append(
                spawn([sys.executable, "-m", "bench.sim", str(spec)], self.base / f"sim-{offset}-{n}.log")
            )

    def stop(self) -> None:
        for proc in self.procs:
            kill(proc)
        self.procs.clear()
