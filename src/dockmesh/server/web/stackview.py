"""Pure helpers of the stack pages: form text, diff lines, per-host rows, deploy service rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dockmesh.store.stacks import Placement

DONE_MESSAGES = {
    "saved": "Saved. Deploy it to a host to apply the new revision.",
    "stop": "Stopped.",
    "start": "Started.",
    "remove": "Removed from the host.",
}


def normalise_text(value: Any) -> str:
    """A textarea's value as the file it stands for: browsers post CRLF line ends, files keep LF."""
    if not isinstance(value, str):
        return ""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, text) per line of a unified diff: `add`, `del`, `hunk`, `file` or `` (context)."""
    lines: list[tuple[str, str]] = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        lines.append((kind, line))
    return lines


def host_rows(
    placements: Iterable[Placement],
    containers: Mapping[str, list[dict[str, Any]]],
    names: Mapping[str, str],
    current: int,
) -> list[dict[str, Any]]:
    """One row per host where the stack is placed by us or has containers, by host name.

    `outdated`: the host runs an older revision than the current one (a redeploy applies it);
    `external`: containers there but no deploy of ours (made with `docker compose` by hand).
    """
    placed = {p.host: p for p in placements}
    rows = []
    for host_id in sorted({*placed, *containers}, key=lambda h: (names.get(h, h), h)):
        placement = placed.get(host_id)
        found = containers.get(host_id, [])
        rows.append(
            {
                "id": host_id,
                "name": names.get(host_id, host_id),
                "placement": placement,
                "outdated": placement is not None and placement.revision != current,
                "external": placement is None,
                "containers": found,
                "running": sum(1 for c in found if c.get("state") == "running"),
                "total": len(found),
            }
        )
    return rows


def service_states(services: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A settled deploy's services as the progress page's rows (the live view fills in the rest)."""
    return [
        {
            "name": str(s.get("name") or ""),
            "state": str(s.get("state") or ""),
            "health": str(s.get("health") or ""),
            "container": str(s.get("container_id") or "")[:12],
        }
        for s in services
        if s.get("name")
    ]
