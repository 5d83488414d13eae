"""A volume's contents as a tar stream, out of one engine and into another (stack migration).

The Docker archive API (`GET`/`PUT /containers/{id}/archive`) on a helper container that is created and
never started: the engine mounts the container's volumes for archive calls, so no process runs in it —
no shell, no command line, no network — and the tar is the engine's own (ownership, modes and links as
`docker cp -a` keeps them). The helper mounts the volume at `/v`, so the tar's entries are `v/…` both ways.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiodocker

from dockmesh.docker._api import delete, image_ref, object_ref, open_stream
from dockmesh.docker.errors import DockerFailure, docker_errors

__all__ = [
    "HELPER_LABEL",
    "MOUNT",
    "export_volume",
    "helper",
    "import_volume",
    "published_ports",
    "volume_sizes",
]

HELPER_LABEL = "dev.dockmesh.helper"  # on helper containers, so a crash's leftovers can be found and removed
MOUNT = "/v"
READ_CHUNK = 256 * 1024


@contextlib.asynccontextmanager
async def helper(
    docker: aiodocker.Docker,
    volume: str,
    image: str,
    *,
    read_only: bool,
    labels: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """A created, never started container mounting `volume` at /v; removed on the way out."""
    object_ref(volume, "volume")
    image_ref(image)
    body = {
        "Image": image,
        "Cmd": ["true"],
        "NetworkDisabled": True,
        "Labels": {HELPER_LABEL: "volume-copy", **(labels or {})},
        "HostConfig": {
            "NetworkMode": "none",
            "Mounts": [{"Type": "volume", "Source": volume, "Target": MOUNT, "ReadOnly": read_only}],
        },
    }
    name = f"dockmesh-copy-{secrets.token_hex(6)}"
    with docker_errors():
        created = await docker._query_json(
            "containers/create", method="POST", params={"name": name}, data=body
        )
    cid = object_ref(str(created["Id"]))
    try:
        yield cid
    finally:
        with contextlib.suppress(Exception):
            await delete(docker, f"containers/{cid}", {"force": "1", "v": "0"})


async def export_volume(docker: aiodocker.Docker, cid: str) -> AsyncIterator[bytes]:
    """The tar of the helper's /v as the engine sends it."""
    with docker_errors():
        async with open_stream(
            docker, f"containers/{object_ref(cid)}/archive", params={"path": MOUNT}
        ) as resp:
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                yield chunk


async def import_volume(docker: aiodocker.Docker, cid: str, body: AsyncIterable[bytes]) -> None:
    """Extract a tar of `v/…` entries into the helper's /v, keeping the tar's owners (`copyUIDGID`)."""
    with docker_errors():
        async with docker._query(
            f"containers/{object_ref(cid)}/archive",
            "PUT",
            params={"path": "/", "copyUIDGID": "1", "noOverwriteDirNonDir": "1"},
            data=body,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        ) as resp:
            resp.release()


async def volume_sizes(docker: aiodocker.Docker, names: list[str]) -> dict[str, int]:
    """Bytes used by each named volume (-1 when the engine does not know), from `GET /system/df`."""
    wanted = {object_ref(n, "volume") for n in names}
    with docker_errors():
        df = await docker._query_json("system/df", params={"type": "volume"})
    sizes = dict.fromkeys(wanted, -1)
    for vol in (df or {}).get("Volumes") or []:
        if vol.get("Name") in wanted:
            size = (vol.get("UsageData") or {}).get("Size")
            sizes[vol["Name"]] = int(size) if isinstance(size, int) and size >= 0 else -1
    return sizes


async def published_ports(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    """Host ports published by running containers: `{port, protocol, host_ip, container}`."""
    with docker_errors():
        raw = await docker._query_json("containers/json")
    rows = []
    for c in raw or []:
        names = c.get("Names") or [""]
        for p in c.get("Ports") or []:
            if isinstance(p.get("PublicPort"), int):
                rows.append(
                    {
                        "port": p["PublicPort"],
                        "protocol": str(p.get("Type") or "tcp"),
                        "host_ip": str(p.get("IP") or ""),
                        "container": str(names[0]).lstrip("/"),
                    }
                )
    return rows


async def image_available(docker: aiodocker.Docker, ref: str, headers: dict[str, str]) -> str | None:
    """None when `ref` is on the engine or its registry answers for it (with the given auth header);
    else the reason it is not."""
    image_ref(ref)
    try:
        with docker_errors():
            await docker._query_json(f"images/{ref}/json")
        return None
    except DockerFailure as exc:
        if exc.code != "not_found":
            return exc.message
    try:
        with docker_errors():
            await docker._query_json(f"distribution/{ref}/json", headers=headers)
        return None
    except DockerFailure as exc:
        return exc.message
