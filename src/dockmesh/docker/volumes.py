"""Volumes: list, create, remove."""

from __future__ import annotations

from typing import Any

import aiodocker

from dockmesh.docker._api import COMPOSE_PROJECT, delete, object_ref
from dockmesh.docker.errors import docker_errors

__all__ = ["create_volume", "list_volumes", "remove_volume", "volume_row"]


def volume_row(raw: dict[str, Any]) -> dict[str, Any]:
    labels = raw.get("Labels") or {}
    created = raw.get("CreatedAt")
    return {
        "name": str(raw.get("Name", "")),
        "driver": str(raw.get("Driver", "")),
        "stack": labels.get(COMPOSE_PROJECT),
        "created": str(created) if created else None,
        "mountpoint": str(raw.get("Mountpoint", "")),
    }


async def list_volumes(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    """Volumes as rows ``name``, ``driver``, ``stack``, ``created`` (string or None), ``mountpoint``."""
    with docker_errors():
        raw = await docker._query_json("volumes")
    return [volume_row(v) for v in (raw or {}).get("Volumes") or []]


async def create_volume(
    docker: aiodocker.Docker, name: str, labels: dict[str, str] | None = None, *, driver: str = "local"
) -> dict[str, Any]:
    """Create volume ``name`` (idempotent in the engine); returns its row."""
    object_ref(name, "volume")
    object_ref(driver, "volume driver")
    config = {"Name": name, "Driver": driver, "Labels": dict(labels or {})}
    with docker_errors():
        raw = await docker._query_json("volumes/create", method="POST", data=config)
    return volume_row(raw)


async def remove_volume(docker: aiodocker.Docker, name: str, *, force: bool = False) -> None:
    """Remove volume ``name``; a volume in use is a 409 conflict (``force`` does not change that)."""
    object_ref(name, "volume")
    with docker_errors():
        await delete(docker, f"volumes/{name}", {"force": "1"} if force else None)
