"""Stacks: compose projects, derived from the labels of all containers."""

from __future__ import annotations

from typing import Any

import aiodocker

from dockmesh.docker.containers import list_containers

__all__ = ["list_stacks"]


async def list_stacks(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    """Rows ``name`` (compose project), ``services`` (sorted, unique), ``running``, ``total``."""
    stacks: dict[str, dict[str, Any]] = {}
    for row in await list_containers(docker, all=True):
        project = row["stack"]
        if not project:
            continue
        stack = stacks.setdefault(project, {"name": project, "services": set(), "running": 0, "total": 0})
        if row["service"]:
            stack["services"].add(row["service"])
        stack["total"] += 1
        if row["state"] == "running":
            stack["running"] += 1
    return [{**s, "services": sorted(s["services"])} for _, s in sorted(stacks.items())]
