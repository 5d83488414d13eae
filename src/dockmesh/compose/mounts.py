"""Service mounts: compose's short (``SOURCE:TARGET[:MODE]``) and long volume syntax, and ``tmpfs``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockmesh.compose.errors import ComposeError
from dockmesh.compose.model import Mount, VolumeSpec
from dockmesh.compose.source import Path
from dockmesh.compose.units import parse_bytes

__all__ = ["Mounts"]


class Mounts:
    """Parses one service's mounts; ``fail(path, message)`` builds the error for a path."""

    def __init__(self, fail: Callable[[Path, str], ComposeError]) -> None:
        self.fail = fail

    def parse(self, raw: dict[str, Any], path: Path, volumes: dict[str, VolumeSpec]) -> tuple[Mount, ...]:
        out: list[Mount] = []
        for i, item in enumerate(raw.get("volumes") or []):
            at: Path = (*path, "volumes", i)
            mount = self.short_mount(item, at) if isinstance(item, str) else self.long_mount(item, at)
            if mount.type == "volume" and mount.source and mount.source not in volumes:
                raise self.fail(at, f"volume {mount.source!r} is not defined under the top-level volumes:")
            out.append(mount)
        tmpfs = raw.get("tmpfs") or []
        for i, item in enumerate([tmpfs] if isinstance(tmpfs, str) else tmpfs):
            target = item.split(":", 1)[0]
            out.append(Mount(type="tmpfs", target=self.target(target, (*path, "tmpfs", i))))
        targets = [m.target for m in out]
        if len(set(targets)) != len(targets):
            raise self.fail((*path, "volumes"), "two mounts share one container path")
        return tuple(out)

    def short_mount(self, item: str, path: Path) -> Mount:
        parts = item.split(":")
        if len(parts) == 1:
            return Mount(type="volume", target=self.target(parts[0], path))
        if len(parts) > 3:
            raise self.fail(path, f"{item!r} is not SOURCE:TARGET[:MODE]")
        source, target = parts[0], self.target(parts[1], path)
        modes = set(parts[2].split(",")) if len(parts) == 3 else set()
        if modes - {"ro", "rw", "z", "Z", "nocopy"}:
            raise self.fail(path, f"unknown volume mode in {item!r} (ro, rw, z, Z, nocopy)")
        read_only = "ro" in modes
        if source.startswith(("/", ".", "~")):
            return Mount(
                type="bind", source=self.bind_source(source, path), target=target, read_only=read_only
            )
        return Mount(
            type="volume", source=source, target=target, read_only=read_only, nocopy="nocopy" in modes
        )

    def long_mount(self, item: dict[str, Any], path: Path) -> Mount:
        kind, target = item["type"], self.target(item["target"], path)
        source = item.get("source", "")
        if kind == "bind":
            return Mount(
                type="bind",
                source=self.bind_source(source, path),
                target=target,
                read_only=bool(item.get("read_only")),
            )
        if kind == "tmpfs":
            if source:
                raise self.fail(path, "a tmpfs mount has no source")
            size = (item.get("tmpfs") or {}).get("size")
            return Mount(type="tmpfs", target=target, tmpfs_size=self.size(size, (*path, "tmpfs", "size")))
        return Mount(
            type="volume",
            source=source,
            target=target,
            read_only=bool(item.get("read_only")),
            nocopy=bool((item.get("volume") or {}).get("nocopy")),
        )

    def target(self, target: str, path: Path) -> str:
        if not target.startswith("/"):
            raise self.fail(path, f"container path {target!r} must be absolute")
        return target

    def bind_source(self, source: str, path: Path) -> str:
        if not source.startswith("/"):
            raise self.fail(
                path,
                f"bind source {source!r} must be an absolute host path: a stack has no project directory "
                "on the host (use a named volume, or /absolute/path)",
            )
        return source

    def size(self, raw: Any, path: Path) -> int | None:
        if raw is None:
            return None
        value = parse_bytes(raw)
        if value is None:
            raise self.fail(path, f"{raw!r} is not a size (e.g. 512m, 1g)")
        return value
