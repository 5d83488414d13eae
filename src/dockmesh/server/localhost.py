"""The server's own Docker engine as host `local`, served by the agent's handlers over an in-process link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockmesh import __version__
from dockmesh.agent.handlers import Handlers
from dockmesh.agent.inventory import Publisher
from dockmesh.docker.engine import EngineUnavailable, connect, docker_host, engine_info, socket_path
from dockmesh.host import metrics
from dockmesh.host.facts import host_facts
from dockmesh.link import Link, Stream
from dockmesh.link.memory import socket_pair
from dockmesh.proto import Role
from dockmesh.server.inventory import Inventory

log = logging.getLogger(__name__)

LOCAL_ID = "local"


class LocalHost:
    """Samples the local engine on the heartbeat interval, like an agent would, and serves requests."""

    def __init__(
        self,
        host: str | None,
        interval: float,
        clock: Callable[[], float],
        disk_path: Path,
        journal: Path | None = None,
        inventory: Inventory | None = None,
    ) -> None:
        self.docker_host = docker_host(host)
        self._journal = journal
        self._inventory = inventory
        self._interval = interval
        self._clock = clock
        self._disk_path = disk_path
        self.available = False
        self.facts: dict[str, Any] = {}
        self.metrics: dict[str, Any] | None = None
        self.metrics_at: float | None = None
        self.link: Link | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        path = socket_path(self.docker_host)
        if path is not None and not Path(path).exists():
            log.info("no Docker socket at %s: host 'local' is not managed", path)
            return
        self._tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self) -> None:
        docker = connect(self.docker_host)
        server_end, host_end = socket_pair()
        handlers = Handlers(docker, journal=self._journal)
        inventory = self._inventory
        self.link = Link(
            server_end,
            Role.ACCEPTOR,
            on_event=(lambda name, body: inventory.receive(LOCAL_ID, name, body)) if inventory else None,
        )
        host_link = Link(
            host_end,
            Role.DIALER,
            on_request=lambda method, params: self._serve(handlers, feed, method, params),
            on_stream=lambda stream: self._stream(handlers, feed, stream),
            on_event=lambda name, body: feed.on_event(name, body),
        )
        # The same inventory feed an agent runs (docs/inventory.md), over the in-process link.
        feed = Publisher(docker, host_link.send_event)
        links = [asyncio.create_task(self.link.run()), asyncio.create_task(host_link.run())]
        if inventory is not None:
            inventory.online(LOCAL_ID, self.link.send_event)
            links.append(asyncio.create_task(feed.run()))
        try:
            while True:
                await self.sample(docker)
                await asyncio.sleep(self._interval)
        finally:
            if inventory is not None:
                inventory.offline(LOCAL_ID)
            await handlers.close()
            await self.link.close()
            for task in links:
                task.cancel()
            await asyncio.gather(*links, return_exceptions=True)
            await docker.close()

    async def _serve(self, handlers: Handlers, feed: Publisher, method: str, params: dict[str, Any]) -> Any:
        result = await handlers.handle(method, params)
        if self._inventory is not None:
            await feed.after(method)  # as an agent does: the change is in the inventory before the answer
        return result

    async def _stream(self, handlers: Handlers, feed: Publisher, stream: Stream) -> None:
        try:
            await handlers.stream(stream)
        finally:
            if self._inventory is not None:
                await feed.after(stream.kind)

    async def sample(self, docker: Any) -> None:
        try:
            info = await engine_info(docker)
        except EngineUnavailable as exc:
            if self.available:
                log.warning("local Docker engine unreachable: %s", exc)
            self.available = False
            return
        self.available = True
        self.facts = {
            **host_facts(),
            "docker_version": info.version,
            "docker_api_version": info.api_version,
            "version": __version__,
        }
        sample = metrics.sample(self._disk_path, (info.containers_running, info.containers_total))
        self.metrics = sample.to_dict()
        self.metrics_at = self._clock()
