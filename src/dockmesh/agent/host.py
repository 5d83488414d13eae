"""The host an agent serves: its facts, its metrics and its request handlers.

The production agent serves a Docker engine; the benchmark simulator plugs in canned hosts here,
so it runs the very same link, lifecycle and renewal code.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from dockmesh import __version__
from dockmesh.agent.handlers import Handlers
from dockmesh.docker.engine import EngineUnavailable, connect, engine_info
from dockmesh.host import metrics
from dockmesh.host.facts import host_facts
from dockmesh.link import Stream


class HostPort(Protocol):
    async def facts(self) -> dict[str, Any]: ...

    async def metrics(self) -> dict[str, Any]: ...

    async def handle(self, method: str, params: dict[str, Any]) -> Any: ...

    async def stream(self, stream: Stream) -> None: ...

    async def close(self) -> None: ...


class DockerHost:
    """This machine and its Docker engine."""

    def __init__(self, docker_host: str | None) -> None:
        self._docker = connect(docker_host)
        self._handlers = Handlers(self._docker)
        self.engine_error: str | None = None
        metrics.sample()  # prime psutil's CPU counter so the first heartbeat is not a fake 0 %

    async def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {**host_facts(), "version": __version__}
        try:
            info = await engine_info(self._docker)
            facts.update(docker_version=info.version, docker_api_version=info.api_version)
            self.engine_error = None
        except EngineUnavailable as exc:
            facts["docker_version"] = None
            self.engine_error = f"Docker engine unreachable: {exc}"
        return facts

    async def metrics(self) -> dict[str, Any]:
        counts = (0, 0)
        with contextlib.suppress(EngineUnavailable):
            info = await engine_info(self._docker)
            counts = (info.containers_running, info.containers_total)
        return metrics.sample("/", counts).to_dict()

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        return await self._handlers.handle(method, params)

    async def stream(self, stream: Stream) -> None:
        await self._handlers.stream(stream)

    async def close(self) -> None:
        await self._docker.close()
