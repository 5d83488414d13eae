"""Connecting to a Docker engine and reading its identity."""

from __future__ import annotations

import os
from dataclasses import dataclass

import aiodocker

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class EngineUnavailable(Exception):
    """The Docker engine cannot be reached."""


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    containers_running: int
    containers_total: int


def docker_host(value: str | None = None) -> str:
    return value or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def socket_path(host: str) -> str | None:
    return host[len("unix://") :] if host.startswith("unix://") else None


def connect(host: str | None = None) -> aiodocker.Docker:
    return aiodocker.Docker(url=docker_host(host))


async def engine_info(docker: aiodocker.Docker) -> EngineInfo:
    try:
        version = await docker.version()
        info = await docker.system.info()
    except (aiodocker.DockerError, OSError) as exc:
        raise EngineUnavailable(str(exc)) from exc
    return EngineInfo(
        version=str(version.get("Version", "")),
        api_version=str(version.get("ApiVersion", "")),
        containers_running=int(info.get("ContainersRunning", 0)),
        containers_total=int(info.get("Containers", 0)),
    )
