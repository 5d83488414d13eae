"""Low-level helpers shared by the adapter modules (not public API).

aiodocker's streaming helpers decode bytes to ``str``, swallow connection errors and
never release the HTTP response when the consumer stops early (its ``_query`` context
manager does not close it), so long-lived streams (logs, stats, events, pull) are read
here with an explicit ``close()``.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import aiohttp

from dockmesh.docker.errors import bad_request

__all__ = [
    "COMPOSE_PROJECT",
    "COMPOSE_SERVICE",
    "delete",
    "image_ref",
    "iter_frames",
    "iter_json_lines",
    "iter_raw",
    "object_ref",
    "open_stream",
    "short_id",
]

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"

# Container, volume and network names/ids as Docker accepts them: safe as a URL path segment.
_OBJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Image references: registry[:port]/path[:tag][@digest] or an image id (sha256:...).
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/:@]*")
_MAX_REF = 512
_FRAME = struct.Struct(">BxxxL")


def object_ref(ref: str, kind: str = "container") -> str:
    """Validate a container/volume/network id or name before it goes into a URL path."""
    if not isinstance(ref, str) or len(ref) > _MAX_REF or not _OBJECT_RE.fullmatch(ref) or ".." in ref:
        raise bad_request(f"invalid {kind} reference: {ref!r}")
    return ref


def image_ref(ref: str) -> str:
    """Validate an image reference (name[:tag][@digest] or id) before it goes into a URL path."""
    if (
        not isinstance(ref, str)
        or len(ref) > _MAX_REF
        or not _IMAGE_RE.fullmatch(ref)
        or ".." in ref
        or "//" in ref
        or ref.endswith("/")
    ):
        raise bad_request(f"invalid image reference: {ref!r}")
    return ref


def short_id(value: str) -> str:
    """12 hex characters of an object id, without any ``sha256:`` prefix."""
    return value.split(":", 1)[-1][:12]


@asynccontextmanager
async def open_stream(
    docker: aiodocker.Docker,
    path: str,
    *,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """An engine response read incrementally, without a read timeout, always closed."""
    async with docker._query(path, method, params=dict(params or {}), headers=headers, timeout=None) as resp:
        try:
            yield resp
        finally:
            resp.close()


async def delete(docker: aiodocker.Docker, path: str, params: Mapping[str, Any] | None = None) -> None:
    """``DELETE path`` (aiodocker's typed wrappers are missing for volumes and networks)."""
    async with docker._query(path, "DELETE", params=dict(params or {})) as resp:
        resp.release()


async def iter_frames(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[int, bytes]]:
    """Demultiplex a non-TTY attach/logs stream: ``(stream, payload)`` per 8-byte-header frame.

    ``stream`` is 0 stdin, 1 stdout, 2 stderr.  Ends quietly on EOF (a frame cut short by
    the engine yields what arrived).
    """
    content = resp.content
    while True:
        try:
            header = await content.readexactly(_FRAME.size)
        except asyncio.IncompleteReadError:
            return
        stream, length = _FRAME.unpack(header)
        if length == 0:
            continue
        try:
            data = await content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                yield stream, bytes(exc.partial)
            return
        yield stream, data


async def iter_raw(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The raw body (TTY streams are not multiplexed) as chunks arrive."""
    async for chunk in resp.content.iter_any():
        if chunk:
            yield chunk


async def iter_json_lines(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per line (stats, events and progress streams)."""
    while True:
        line = await resp.content.readline()
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj
