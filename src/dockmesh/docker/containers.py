"""Containers: list, inspect, lifecycle actions, create."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiodocker

from dockmesh.docker._api import COMPOSE_PROJECT, COMPOSE_SERVICE, object_ref, short_id
from dockmesh.docker.errors import bad_request, docker_errors

__all__ = [
    "ACTIONS",
    "container_action",
    "container_row",
    "create_container",
    "inspect_container",
    "list_containers",
]

#: Actions accepted by :func:`container_action`.
ACTIONS = ("start", "stop", "restart", "kill", "remove")


def _name(names: Sequence[str] | None) -> str:
    """The container's own name: ``/web`` -> ``web`` (skipping legacy link aliases ``/a/b``)."""
    cleaned = [n.lstrip("/") for n in names or []]
    for n in cleaned:
        if "/" not in n:
            return n
    return cleaned[0] if cleaned else ""


def container_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Trim one ``GET /containers/json`` entry to the fields dockmesh lists.

    Labels stay out: they were half of every row, and a 1,000-host list is 50,000 rows. The
    container's page shows them from inspect.
    """
    labels = raw.get("Labels") or {}
    return {
        "id": short_id(str(raw.get("Id", ""))),
        "name": _name(raw.get("Names")),
        "image": str(raw.get("Image", "")),
        "state": str(raw.get("State", "")),
        "status": str(raw.get("Status", "")),
        "stack": labels.get(COMPOSE_PROJECT),
        "service": labels.get(COMPOSE_SERVICE),
        "created": int(raw.get("Created") or 0),
    }


async def list_containers(
    docker: aiodocker.Docker, *, all: bool = True, ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """All containers (or only running ones with ``all=False``; only ``ids`` if given) as trimmed rows."""
    params: dict[str, Any] = {"all": bool(all)}
    if ids is not None:
        params["filters"] = json.dumps({"id": list(ids)})
    with docker_errors():
        raw = await docker._query_json("containers/json", params=params)
    return [container_row(c) for c in raw or []]


async def inspect_container(docker: aiodocker.Docker, ref: str) -> dict[str, Any]:
    """The engine's full inspect JSON of container ``ref`` (id, id prefix or name)."""
    object_ref(ref)
    with docker_errors():
        data: dict[str, Any] = await docker._query_json(f"containers/{ref}/json")
    return data


async def container_action(
    docker: aiodocker.Docker, ref: str, action: str, *, timeout: int | None = None
) -> None:
    """Run ``action`` (start/stop/restart/kill/remove) on container ``ref``.

    ``timeout`` is the stop grace period in seconds for stop/restart (engine default 10).
    ``remove`` force-removes the container with its anonymous volumes.  Starting a
    running (or stopping a stopped) container is not an error.
    """
    if action not in ACTIONS:
        raise bad_request(f"unknown container action {action!r}; expected one of {', '.join(ACTIONS)}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        raise bad_request(f"invalid stop timeout {timeout!r}")
    container = docker.containers.container(object_ref(ref))
    with docker_errors():
        if action == "start":
            await container.start()
        elif action == "stop":
            await container.stop(t=timeout)
        elif action == "restart":
            await container.restart(t=timeout)
        elif action == "kill":
            await container.kill()
        else:
            await container.delete(force=True, v=True)


def _str_list(value: Sequence[str], what: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{what} must be a list of strings")
    return list(value)


def _str_map(value: Mapping[str, str] | None, what: str) -> dict[str, str]:
    result = dict(value or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in result.items()):
        raise bad_request(f"{what} must map strings to strings")
    return result


async def create_container(
    docker: aiodocker.Docker,
    *,
    name: str,
    image: str,
    cmd: list[str],
    labels: dict[str, str] | None = None,
    network: str = "none",
    tty: bool = False,
    volumes: dict[str, str] | None = None,
    start: bool = True,
) -> str:
    """Create (and by default start) a container; returns its full id.

    ``cmd`` is passed to the engine as an argv list, never through a shell.
    ``volumes`` maps named volumes (created on demand) to container paths.  If the
    start fails the just-created container is removed again before the error is raised.
    """
    if not isinstance(name, str) or not name:
        raise bad_request("a container name is required")
    if not isinstance(image, str) or not image:
        raise bad_request("an image is required")
    mounts = [
        {"Type": "volume", "Source": object_ref(vol, "volume"), "Target": target}
        for vol, target in _str_map(volumes, "volumes").items()
    ]
    config: dict[str, Any] = {
        "Image": image,
        "Cmd": _str_list(cmd, "cmd"),
        "Labels": _str_map(labels, "labels"),
        "Tty": bool(tty),
        "HostConfig": {"NetworkMode": network, "Mounts": mounts},
    }
    with docker_errors():
        container = await docker.containers.create(config, name=name)
        if start:
            try:
                await container.start()
            except Exception:
                with contextlib.suppress(aiodocker.DockerError):
                    await container.delete(force=True, v=True)
                raise
    return str(container.id)
