"""The host an agent serves: its facts, its metrics and its request handlers.

The production agent serves a Docker engine; the benchmark simulator plugs in canned hosts here,
so it runs the very same link, lifecycle and renewal code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dockmesh import __version__
from dockmesh.agent.handlers import Handlers
from dockmesh.agent.inventory import Publisher
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


# How long a heartbeat waits for the engine's container counts before reusing the last ones.
ENGINE_PROBE_WAIT = 0.5


class DockerHost:
    """This machine and its Docker engine."""

    def __init__(self, docker_host: str | None, journal: Path | None = None) -> None:
        self._docker = connect(docker_host)
        self._handlers = Handlers(self._docker, journal=journal)
        self.engine_error: str | None = None
        self._counts = (0, 0)
        self._probe: asyncio.Task[None] | None = None
        metrics.sample()  # prime the CPU counter so the first heartbeat is not a fake 0 %

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
        """Host metrics now; container counts as fresh as the engine allows.

        A hung engine must not hold up the heartbeat, or the server would drop a live host for
        silence. One probe at a time runs on; until it answers, the last counts stand.
        """
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_engine())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._probe), ENGINE_PROBE_WAIT)
        return metrics.sample("/", self._counts).to_dict()

    async def _probe_engine(self) -> None:
        with contextlib.suppress(EngineUnavailable):
            info = await engine_info(self._docker)
            self._counts = (info.containers_running, info.containers_total)

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        return await self._handlers.handle(method, params)

    async def stream(self, stream: Stream) -> None:
        await self._handlers.stream(stream)

    def publisher(self, send: Callable[[str, dict[str, Any]], None]) -> Publisher:
        """This link's inventory feed (docs/inventory.md); optional for a HostPort (the runner checks)."""
        return Publisher(self._docker, send)

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self._handlers.close()
        await self._docker.close()
