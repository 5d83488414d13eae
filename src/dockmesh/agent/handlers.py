"""Requests the server sends to the agent, answered from the local Docker engine."""

from __future__ import annotations

from typing import Any

import aiodocker

from dockmesh.docker.engine import EngineUnavailable, engine_info
from dockmesh.link import RemoteError


class Handlers:
    """Maps request methods to coroutines; unknown methods get a clear error, not a crash."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "ping":
            return {"pong": True}
        if method == "engine.info":
            try:
                info = await engine_info(self._docker)
            except EngineUnavailable as exc:
                raise RemoteError("engine_unavailable", str(exc)) from None
            return {
                "version": info.version,
                "api_version": info.api_version,
                "containers_running": info.containers_running,
                "containers_total": info.containers_total,
            }
        raise RemoteError("unknown_method", f"this agent has no method {method!r}")
