"""Prune unused images and volumes, with a dry run that names exactly what a real prune removes.

The engine's prune endpoints have no dry run, so the set is computed here from the engine's own
lists, and the real prune removes that set object by object (never the engine's prune endpoint,
whose set could differ from the preview). Semantics follow the docker CLI:

- images, ``unused`` (``docker image prune -a``): every top-level image (no child image) that no
  container, running or stopped, was created from; ``dangling`` (``docker image prune``): only the
  untagged ones among those.
- volumes (``docker volume prune -a``): every volume no container, running or stopped, mounts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiodocker

from dockmesh.docker._api import delete, short_id
from dockmesh.docker.errors import DockerFailure, bad_request, docker_errors

__all__ = [
    "IMAGE_MODES",
    "PruneCandidate",
    "PruneResult",
    "image_candidates",
    "prune_images",
    "prune_volumes",
    "volume_candidates",
]

#: ``unused``: no container uses it (docker image prune -a); ``dangling``: that, and untagged too.
IMAGE_MODES = ("unused", "dangling")


@dataclass(frozen=True)
class PruneCandidate:
    """One object a prune removes: ``ref`` is what the engine is asked to delete, ``row`` what is shown."""

    ref: str
    row: dict[str, Any]
    size: int
    tags: tuple[str, ...] = ()


@dataclass
class PruneResult:
    items: list[dict[str, Any]]
    reclaimed: int
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "reclaimed": self.reclaimed, "failed": self.failed}


def _tags(raw: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(t for t in raw.get("RepoTags") or [] if t != "<none>:<none>")


def _nonneg(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def image_candidates(
    images: Iterable[Mapping[str, Any]],
    containers: Iterable[Mapping[str, Any]],
    *,
    mode: str = "unused",
    unique_sizes: Mapping[str, int] | None = None,
) -> list[PruneCandidate]:
    """The images a prune in ``mode`` removes, by name then id.

    ``images`` are ``GET /images/json?all=1`` rows, ``containers`` ``GET /containers/json?all=1``
    rows; ``unique_sizes`` maps image id to the bytes only it holds (``system/df``: Size - SharedSize).
    """
    if mode not in IMAGE_MODES:
        raise bad_request(f"prune mode must be one of {', '.join(IMAGE_MODES)}, not {mode!r}")
    images = list(images)
    parents = {str(i.get("ParentId") or "") for i in images}
    used = {str(c.get("ImageID") or "") for c in containers}
    chosen: list[PruneCandidate] = []
    for raw in images:
        image_id = str(raw.get("Id") or "")
        if not image_id or image_id in parents or image_id in used:
            continue  # a parent goes with its last child; a used image stays
        tags = _tags(raw)
        if mode == "dangling" and tags:
            continue
        size = _nonneg(raw.get("Size"))
        unique = (unique_sizes or {}).get(image_id, size)
        row = {"id": short_id(image_id), "tags": list(tags), "size": size}
        chosen.append(PruneCandidate(image_id, row, unique, tags))
    return sorted(chosen, key=lambda c: (c.tags[0] if c.tags else "~", c.ref))


def volume_candidates(
    volumes: Iterable[Mapping[str, Any]],
    containers: Iterable[Mapping[str, Any]],
    *,
    sizes: Mapping[str, int] | None = None,
) -> list[PruneCandidate]:
    """The volumes no container mounts, by name (``GET /volumes`` and ``/containers/json?all=1`` rows)."""
    mounted = {
        str(m.get("Name"))
        for c in containers
        for m in c.get("Mounts") or []
        if m.get("Type") == "volume" and m.get("Name")
    }
    chosen = []
    for raw in volumes:
        name = str(raw.get("Name") or "")
        if not name or name in mounted:
            continue
        size = (sizes or {}).get(name, 0)
        row = {"name": name, "driver": str(raw.get("Driver") or ""), "size": size}
        chosen.append(PruneCandidate(name, row, size))
    return sorted(chosen, key=lambda c: c.ref)


async def _disk_usage(docker: aiodocker.Docker) -> dict[str, Any]:
    with docker_errors():
        usage = await docker._query_json("system/df")
    return usage if isinstance(usage, dict) else {}


async def _containers(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    with docker_errors():
        raw = await docker._query_json("containers/json", params={"all": "1"})
    return list(raw or [])


def _unique_image_sizes(usage: Mapping[str, Any]) -> dict[str, int]:
    sizes = {}
    for img in usage.get("Images") or []:
        size, shared = _nonneg(img.get("Size")), img.get("SharedSize")
        # SharedSize is -1 when the engine did not compute it: then the whole size is this image's.
        sizes[str(img.get("Id"))] = size - _nonneg(shared) if isinstance(shared, int) else size
    return sizes


async def _remove(candidate: PruneCandidate, removing: Awaitable[None]) -> dict[str, Any] | None:
    """None when ``candidate`` went; else the failure row (in use since the preview, already gone...)."""
    try:
        await removing
    except DockerFailure as exc:
        if exc.code == "not_found":
            return None  # gone already: what the prune wanted
        return {**candidate.row, "error": exc.message, "code": exc.code}
    return None


async def prune_images(docker: aiodocker.Docker, *, dry_run: bool, mode: str = "unused") -> PruneResult:
    """What an image prune removes (``dry_run``) or removed, and the bytes it frees (or freed).

    A dry run's ``reclaimed`` counts the bytes only those images hold (layers two of them share are
    not counted); a real prune reports the engine's layer storage before minus after.
    """
    with docker_errors():
        images = await docker._query_json("images/json", params={"all": "1"})
    usage = await _disk_usage(docker)
    chosen = image_candidates(
        images or [], await _containers(docker), mode=mode, unique_sizes=_unique_image_sizes(usage)
    )
    if dry_run:
        return PruneResult([c.row for c in chosen], sum(c.size for c in chosen))
    before = _nonneg(usage.get("LayersSize"))
    removed: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for candidate in chosen:
        failure = await _remove(candidate, _delete_image(docker, candidate))
        (failed if failure else removed).append(failure or candidate.row)
    after = _nonneg((await _disk_usage(docker)).get("LayersSize"))
    return PruneResult(removed, max(0, before - after), failed)


async def _delete_image(docker: aiodocker.Docker, candidate: PruneCandidate) -> None:
    # By tag, then by id: deleting an id with several tags needs force, and force would also
    # untag an image a container started using since the set was computed.
    with docker_errors():
        for tag in candidate.tags:
            await delete(docker, f"images/{tag}")
        try:
            await delete(docker, f"images/{candidate.ref}")
        except aiodocker.DockerError as exc:
            if exc.status != 404 or not candidate.tags:
                raise


async def prune_volumes(docker: aiodocker.Docker, *, dry_run: bool) -> PruneResult:
    """What a volume prune removes (``dry_run``) or removed, with the bytes their data takes."""
    with docker_errors():
        raw = await docker._query_json("volumes")
    usage = await _disk_usage(docker)
    sizes = {
        str(v.get("Name")): _nonneg((v.get("UsageData") or {}).get("Size"))
        for v in usage.get("Volumes") or []
    }
    chosen = volume_candidates((raw or {}).get("Volumes") or [], await _containers(docker), sizes=sizes)
    if dry_run:
        return PruneResult([c.row for c in chosen], sum(c.size for c in chosen))
    removed: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for candidate in chosen:
        failure = await _remove(candidate, _delete_volume(docker, candidate.ref))
        (failed if failure else removed).append(failure or candidate.row)
    return PruneResult(removed, sum(int(_nonneg(r.get("size"))) for r in removed), failed)


async def _delete_volume(docker: aiodocker.Docker, name: str) -> None:
    # No force: a volume a container mounted since the set was computed is refused (409), not lost.
    with docker_errors():
        await delete(docker, f"volumes/{name}")
