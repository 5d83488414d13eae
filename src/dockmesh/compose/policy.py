"""What a stack may do to its host only when an admin allowed it (per-stack allow_privileged)."""

from __future__ import annotations

import posixpath

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.model import Project
from dockmesh.compose.source import dotted

__all__ = ["check_policy"]

# Mounting any of these hands the stack the Docker engine, hence root on the host.
_SOCKET_DIRS = frozenset({"/var/run", "/run"})


def _host_takeover(source: str) -> str | None:
    path = posixpath.normpath(source)
    if path == "/":
        return "binds the host's /"
    if path.endswith("docker.sock") or path in _SOCKET_DIRS:
        return "binds the Docker socket"
    return None


def check_policy(project: Project, *, allow_privileged: bool) -> None:
    """Refuse privileged containers, host / and Docker socket binds and host networking (not_allowed)."""
    if allow_privileged:
        return
    for name, service in project.services.items():
        reasons: list[tuple[tuple[str | int, ...], str]] = []
        if service.privileged:
            reasons.append((("services", name, "privileged"), "runs privileged"))
        if service.network_mode == "host":
            reasons.append((("services", name, "network_mode"), "uses the host's network"))
        for i, mount in enumerate(service.mounts):
            if mount.type == "bind" and (why := _host_takeover(mount.source)):
                reasons.append((("services", name, "volumes", i), why))
        if reasons:
            where, why = reasons[0]
            raise ComposeError(
                "not_allowed",
                f"service {name!r} {why}: only a stack an admin allowed privileges may do that",
                key=dotted(where),
                line=project.lines.get(where) if project.lines else None,
            )
