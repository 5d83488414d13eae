"""Pre-flight of one stack migration: every check of docs/migration.md, each a named problem.

Pure where it can be (`port_problems`, `resource_problems`, `compat_problems`, `mount_findings` take
values and return problems, unit-tested without hosts); `Preflight` is what the drain plans with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dockmesh.compose.model import Project

DISK_SLACK = 64 << 20  # room the destination keeps beyond the copy: the engine's own writes, logs
DISK_FACTOR = 1.1  # tar headers and filesystem blocks: a copy takes a little more than `df` says


@dataclass(frozen=True)
class Problem:
    code: str
    message: str

    def view(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class VolumePlan:
    name: str  # the engine's name on the source (and the destination)
    bytes: int  # -1 when the source engine could not say


@dataclass
class Preflight:
    stack: str
    source: str
    destination: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    volumes: list[VolumePlan] = field(default_factory=list)
    memory_bytes: int = 0
    images: list[str] = field(default_factory=list)
    arch: str = ""
    engine: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def volume_bytes(self) -> int:
        return sum(max(0, v.bytes) for v in self.volumes)

    def add(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, message))

    def view(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "stack": self.stack,
            "source": self.source,
            "destination": self.destination,
            "problems": [p.view() for p in self.problems],
            "warnings": [p.view() for p in self.warnings],
            "volumes": [{"name": v.name, "bytes": v.bytes} for v in self.volumes],
            "volume_bytes": self.volume_bytes,
            "memory_bytes": self.memory_bytes,
            "images": self.images,
            "arch": self.arch,
            "engine": self.engine,
        }


def project_volumes(project: Project) -> tuple[list[str], list[Problem]]:
    """The engine names of the named volumes to copy, and a problem per external one."""
    names, problems = [], []
    for spec in project.volumes.values():
        if spec.external:
            problems.append(
                Problem("volume_external", f"volume {spec.name!r} is external: not the stack's to move")
            )
        else:
            names.append(spec.name)
    return sorted(names), problems


def mount_findings(project: Project) -> list[Problem]:
    """Bind mounts are host paths: flagged, never copied."""
    return [
        Problem(
            "bind_mount", f"service {s.name!r} bind-mounts {m.source!r} at {m.target!r}: it is not copied"
        )
        for s in project.services.values()
        for m in s.mounts
        if m.type == "bind"
    ]


def port_problems(project: Project, in_use: list[dict[str, Any]]) -> list[Problem]:
    """A published port of the stack that a running container on the destination already publishes."""
    taken: dict[tuple[int, str], str] = {}
    for row in in_use:
        if isinstance(row.get("port"), int) and isinstance(row.get("protocol"), str):
            taken.setdefault((row["port"], row["protocol"]), str(row.get("container") or "?")[:128])
    problems = []
    for service in project.services.values():
        for port in service.ports:
            if port.published is None:
                continue
            holder = taken.get((port.published, port.protocol))
            if holder is not None:
                problems.append(
                    Problem(
                        "port_collision",
                        f"port {port.published}/{port.protocol} of service {service.name!r} is already "
                        f"published on the destination by container {holder!r}",
                    )
                )
    return problems


def memory_of(project: Project) -> int:
    return sum(s.memory or 0 for s in project.services.values())


def _free(metrics: dict[str, Any] | None, used: str, total: str) -> int | None:
    if not metrics:
        return None
    u, t = metrics.get(used), metrics.get(total)
    if isinstance(u, (int, float)) and isinstance(t, (int, float)) and t > 0:
        return int(t - u)
    return None


def resource_problems(volume_bytes: int, memory_bytes: int, metrics: dict[str, Any] | None) -> list[Problem]:
    """Disk for the copy and memory for the stack, from the destination's last heartbeat."""
    problems = []
    disk = _free(metrics, "disk_used", "disk_total")
    need = int(volume_bytes * DISK_FACTOR) + DISK_SLACK
    if disk is None:
        problems.append(Problem("disk_space", "the destination has not reported its free disk yet"))
    elif disk < need:
        problems.append(
            Problem("disk_space", f"the destination has {disk} bytes of disk free; the copy needs {need}")
        )
    mem = _free(metrics, "mem_used", "mem_total")
    if memory_bytes and mem is not None and mem < memory_bytes:
        problems.append(
            Problem(
                "memory",
                f"the destination has {mem} bytes of memory free; the stack's limits need {memory_bytes}",
            )
        )
    return problems


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _version(text: str) -> tuple[int, ...] | None:
    match = _VERSION.match(text or "")
    return tuple(int(g or 0) for g in match.groups()) if match else None


def compat_problems(source: dict[str, Any], destination: dict[str, Any]) -> list[Problem]:
    """Same architecture, and a destination engine no older than the source's."""
    problems = []
    a, b = str(source.get("arch") or ""), str(destination.get("arch") or "")
    if a and b and a != b:
        problems.append(Problem("arch_mismatch", f"the source is {a[:40]}, the destination {b[:40]}"))
    va, vb = (
        _version(str(source.get("docker_version") or "")),
        _version(str(destination.get("docker_version") or "")),
    )
    if va and vb and vb < va:
        problems.append(
            Problem(
                "engine_version",
                f"the destination's engine {'.'.join(map(str, vb))} is older than the source's "
                f"{'.'.join(map(str, va))}",
            )
        )
    return problems


# --- a host's answers: whatever the host sent, only well-formed values are used --------------------
MAX_ROWS = 10_000


def sizes_from(answer: Any, names: list[str]) -> list[VolumePlan]:
    """`volumes.size`'s answer as plans for the volumes asked about (anything else is -1: unknown)."""
    sizes = answer.get("sizes") if isinstance(answer, dict) else None
    sizes = sizes if isinstance(sizes, dict) else {}
    plans = []
    for name in names:
        value = sizes.get(name)
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62
        plans.append(VolumePlan(name, value if ok else -1))  # type: ignore[arg-type]
    return plans


def missing_from(answer: Any, images: list[str]) -> dict[str, str]:
    """`images.available`'s answer: only the images asked about, each reason a bounded string."""
    missing = answer.get("missing") if isinstance(answer, dict) else None
    if not isinstance(missing, dict):
        return {}
    return {i: str(missing[i])[:300] for i in sorted(images) if i in missing}


def rows_from(answer: Any, key: str | None = None) -> list[dict[str, Any]]:
    """A list of objects from an answer (or from `answer[key]`), at most MAX_ROWS, non-objects dropped."""
    rows = answer.get(key) if key is not None and isinstance(answer, dict) else answer
    if not isinstance(rows, list):
        return []
    return [r for r in rows[:MAX_ROWS] if isinstance(r, dict)]
