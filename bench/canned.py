"""A simulated host: realistic Docker-shaped data, answered through the production trimming code."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from dockmesh import __version__
from dockmesh.docker.containers import container_row
from dockmesh.link import RemoteError, Stream

CONTAINERS_PER_HOST = 50


def raw_container(host: int, i: int) -> dict[str, Any]:
    """One container object as `GET /containers/json` returns it (the fields that exist in 1.41)."""
    digest = hashlib.sha256(f"{host}-{i}".encode()).hexdigest()
    project = f"stack{i % 7}"
    service = f"svc{i % 5}"
    return {
        "Id": digest,
        "Names": [f"/{project}-{service}-{i}"],
        "Image": f"registry.example.com/team/{service}:1.{i % 9}",
        "ImageID": "sha256:" + hashlib.sha256(service.encode()).hexdigest(),
        "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
        "Created": 1_760_000_000 + i,
        "Ports": [{"PrivatePort": 80, "Type": "tcp"}],
        "Labels": {
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.version": "2.29.0",
            "org.opencontainers.image.source": "https://example.com/repo",
        },
        "State": "running" if i % 10 else "exited",
        "Status": "Up 3 days" if i % 10 else "Exited (0) 2 hours ago",
        "HostConfig": {"NetworkMode": f"{project}_default"},
        "NetworkSettings": {
            "Networks": {f"{project}_default": {"NetworkID": digest[:12], "IPAddress": "172.18.0.2"}}
        },
        "Mounts": [{"Type": "volume", "Name": f"{project}_data", "Destination": "/data", "Driver": "local"}],
    }


class CannedHost:
    """Implements the agent's HostPort with canned data; `stall` makes every request hang (a frozen host)."""

    def __init__(self, index: int, *, stall: bool = False) -> None:
        self.index = index
        self.stall = stall
        # Trimmed once, by the production code: a real agent trims on its own CPU, while a thousand
        # simulated ones share the server's two cores, so trimming per request would bill the server.
        self._rows = [container_row(raw_container(index, i)) for i in range(CONTAINERS_PER_HOST)]
        self.engine_error: str | None = None

    async def facts(self) -> dict[str, Any]:
        return {
            "hostname": f"sim-{self.index}",
            "os": "Linux 6.1 (simulated)",
            "arch": "x86_64",
            "version": __version__,
            "docker_version": "20.10.24",
            "docker_api_version": "1.41",
        }

    async def metrics(self) -> dict[str, Any]:
        return {
            "cpu_percent": float(self.index % 100),
            "cpu_count": 4,
            "mem_used": 2 << 30,
            "mem_total": 8 << 30,
            "disk_used": 40 << 30,
            "disk_total": 100 << 30,
            "containers_running": CONTAINERS_PER_HOST - CONTAINERS_PER_HOST // 10,
            "containers_total": CONTAINERS_PER_HOST,
        }

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if self.stall:
            await asyncio.Event().wait()
        if method == "ping":
            return {"pong": True}
        if method == "containers.list":
            return self._rows
        if method in ("images.list", "volumes.list", "networks.list", "stacks.list"):
            return []
        raise RemoteError("unknown_method", method)

    async def stream(self, stream: Stream) -> None:
        raise RemoteError("unsupported", "the simulator serves no streams")

    async def close(self) -> None:
        return None
