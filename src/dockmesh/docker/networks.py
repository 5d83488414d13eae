"""Networks: list, create, remove."""

from __future__ import annotations

from typing import Any

import aiodocker

from dockmesh.docker._api import COMPOSE_PROJECT, delete, object_ref, short_id
from dockmesh.docker.errors import bad_request, docker_errors

__all__ = ["create_network", "list_networks", "remove_network"]


async def list_networks(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    """Networks as rows ``id`` (12), ``name``, ``driver``, ``scope``, ``stack``, ``internal``."""
    with docker_errors():
        raw = await docker.networks.list()
    return [
        {
            "id": short_id(str(n.get("Id", ""))),
            "name": str(n.get("Name", "")),
            "driver": str(n.get("Driver", "")),
            "scope": str(n.get("Scope", "")),
            "stack": (n.get("Labels") or {}).get(COMPOSE_PROJECT),
            "internal": bool(n.get("Internal", False)),
        }
        for n in raw or []
    ]


async def create_network(
    docker: aiodocker.Docker,
    name: str,
    *,
    driver: str = "bridge",
    internal: bool = True,
    labels: dict[str, str] | None = None,
) -> str:
    """Create network ``name`` (duplicate names are a 409 conflict); returns its full id."""
    object_ref(name, "network")
    if not isinstance(driver, str) or not driver:
        raise bad_request("a network driver is required")
    config = {
        "Name": name,
        "Driver": driver,
        "Internal": bool(internal),
        "Labels": dict(labels or {}),
        "CheckDuplicate": True,
    }
    with docker_errors():
        network = await docker.networks.create(config)
    return str(network.id)


async def remove_network(docker: aiodocker.Docker, ref: str) -> None:
    """Remove network ``ref`` (id or name); one with attached containers is a conflict."""
    object_ref(ref, "network")
    with docker_errors():
        await delete(docker, f"networks/{ref}")
