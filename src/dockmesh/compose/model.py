"""The typed, normalised project a compose file describes (what the Docker side applies)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from dockmesh.compose.source import Lines

__all__ = [
    "Healthcheck",
    "Mount",
    "NetworkSpec",
    "Port",
    "Project",
    "Service",
    "VolumeSpec",
]


@dataclass(frozen=True)
class Port:
    target: int
    published: int | None = None  # None: the engine picks a port
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    type: str  # volume, bind, tmpfs
    target: str
    source: str = ""  # host path (bind), project volume key (volume; "" anonymous)
    read_only: bool = False
    nocopy: bool = False
    tmpfs_size: int | None = None


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # ("NONE",) disables the image's own check
    interval_ns: int | None = None
    timeout_ns: int | None = None
    retries: int | None = None
    start_period_ns: int | None = None
    start_interval_ns: int | None = None


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    networks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (project network key, extra aliases)
    network_mode: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    restart: str = "no"
    depends_on: tuple[tuple[str, str], ...] = ()  # (service, condition)
    healthcheck: Healthcheck | None = None
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    ulimits: tuple[tuple[str, int, int], ...] = ()
    log_driver: str | None = None
    log_options: tuple[tuple[str, str], ...] = ()
    nano_cpus: int | None = None
    memory: int | None = None
    privileged: bool = False
    init: bool = False
    stop_signal: str | None = None
    stop_grace_s: int | None = None
    config_hash: str = field(default="", compare=False)

    def with_hash(self, context: dict[str, Any] | None = None) -> Service:
        return dataclasses.replace(self, config_hash=service_hash(self, context))


@dataclass(frozen=True)
class NetworkSpec:
    key: str
    name: str  # the engine's name: <project>_<key> unless name: or external says otherwise
    external: bool = False
    driver: str | None = None
    driver_opts: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    attachable: bool = False
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VolumeSpec:
    key: str
    name: str
    external: bool = False
    driver: str | None = None
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Project:
    name: str
    services: dict[str, Service]  # in depends_on order: every service after what it depends on
    networks: dict[str, NetworkSpec]
    volumes: dict[str, VolumeSpec]
    lines: Lines | None = field(default=None, compare=False, repr=False)  # for errors found later (policy)


# Start order and profiles decide when a container runs, not what it is: changing them must not
# recreate a running container (compose v2 leaves them out of its hash too).
_NOT_HASHED = frozenset({"name", "depends_on", "config_hash"})


def service_hash(service: Service, context: dict[str, Any] | None = None) -> str:
    """sha256 of the service's canonical JSON: stable across key order, changes with its config.

    ``context`` adds what the config refers to by key (the engine names of its networks and volumes).
    """
    data = {k: v for k, v in dataclasses.asdict(service).items() if k not in _NOT_HASHED}
    data["context"] = context or {}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    raise TypeError(f"not hashable as JSON: {type(value).__name__}")
