"""A role scope tried before it is saved: its parse error (with where), or the hosts it reaches now."""

from __future__ import annotations

from dataclasses import dataclass

from dockmesh.server.directory import HostDirectory, HostRef
from dockmesh.server.selector import SelectorError, parse
from dockmesh.server.services import access
from dockmesh.server.services.access import Caller


@dataclass(frozen=True)
class ScopePreview:
    text: str  # as typed
    canonical: str  # "" = every host
    error: str
    position: int | None  # 0-based offset into `text` of the problem
    hosts: tuple[HostRef, ...]


async def preview(caller: Caller, directory: HostDirectory, text: str) -> ScopePreview:
    """Only for whoever may edit roles: the answer names every host, whatever the caller's own scope."""
    access.require_global(caller, access.USERS_MANAGE)
    try:
        selector = parse(text)
    except SelectorError as exc:
        return ScopePreview(text, "", exc.message, exc.position, ())
    hosts = tuple(h for h in await directory.all() if selector.matches(h.id, h.name, h.tags))
    canonical = "" if selector.op == "all" else selector.text
    return ScopePreview(text, canonical, "", None, hosts)
