"""The host's side of a stack migration: volume sizes, ports in use, image availability, and a volume's
contents out (`volumes.export`) and in (`volumes.import`) as a tar stream with its SHA-256
(docs/migration.md).

Every name is checked before it reaches the engine; the credentials of `images.available` are used for
that call only. An import that fails in any way — a short stream, a digest that differs from the
sender's, the engine refusing the tar — removes the volume it created, so a half copy is never accepted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiodocker

from dockmesh.agent.deploys import _auth
from dockmesh.docker import archive
from dockmesh.docker._api import delete, image_ref, object_ref
from dockmesh.docker.errors import DockerFailure, docker_errors
from dockmesh.docker.images import pull_image, registry_auth_header, registry_host
from dockmesh.link import RemoteError, Stream
from dockmesh.link.packets import Kind, PacketStream, decode_json
from dockmesh.proto.methods import Volumes

log = logging.getLogger(__name__)

MIGRATION_LABEL = "dev.dockmesh.migration"
MIGRATION_ID = re.compile(r"[0-9a-f]{32}")
_SHA = re.compile(r"[0-9a-f]{64}")
MAX_NAMES = 256
MAX_IMAGES = 64
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,127}")


def _name(params: dict[str, Any], key: str = "name") -> str:
    value = params.get(key)
    try:
        return object_ref(value, "volume")  # type: ignore[arg-type]
    except DockerFailure:
        raise RemoteError("bad_request", f"'{key}' must be a volume name") from None


def _migration(params: dict[str, Any]) -> str:
    value = params.get("migration")
    if not isinstance(value, str) or not MIGRATION_ID.fullmatch(value):
        raise RemoteError("bad_request", "'migration' must be 32 hex digits")
    return value


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(isinstance(k, str) and _LABEL.fullmatch(k) for k in value)
        or not all(isinstance(v, str) and len(v) <= 256 for v in value.values())
    ):
        raise RemoteError("bad_request", "'labels' must map at most 16 label names to short strings")
    return dict(value)


def _strings(params: dict[str, Any], key: str, limit: int) -> list[str]:
    value = params.get(key)
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(v, str) for v in value):
        raise RemoteError("bad_request", f"'{key}' must be a list of at most {limit} strings")
    return list(value)


def _failure(exc: DockerFailure) -> RemoteError:
    return RemoteError(exc.code, exc.message)


class TransferHandlers:
    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker
        self.requests: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            Volumes.SIZE: self._size,
            Volumes.PORTS: self._ports,
            Volumes.IMAGES: self._images,
            Volumes.DISCARD: self._discard,
        }
        self.streams: dict[str, Callable[[Stream], Awaitable[None]]] = {
            Volumes.EXPORT: self._export,
            Volumes.IMPORT: self._import,
        }

    async def _size(self, params: dict[str, Any]) -> Any:
        names = _strings(params, "names", MAX_NAMES)
        for n in names:
            _name({"name": n})
        try:
            return {"sizes": await archive.volume_sizes(self._docker, names)}
        except DockerFailure as exc:
            raise _failure(exc) from None

    async def _ports(self, params: dict[str, Any]) -> Any:
        try:
            return {"ports": await archive.published_ports(self._docker)}
        except DockerFailure as exc:
            raise _failure(exc) from None

    async def _images(self, params: dict[str, Any]) -> Any:
        """`{"missing": {image: reason}}`: images neither here nor resolvable in their registry."""
        images = _strings(params, "images", MAX_IMAGES)
        auth = _auth(params.get("auth")) or {}
        missing: dict[str, str] = {}
        for ref in images:
            creds = auth.get(registry_host(ref))
            try:
                headers = {"X-Registry-Auth": registry_auth_header(ref, creds)} if creds else {}
                reason = await archive.image_available(self._docker, ref, headers)
            except DockerFailure as exc:
                reason = exc.message
            if reason is not None:
                missing[ref] = reason[:300]
        del auth
        return {"missing": missing}

    async def _discard(self, params: dict[str, Any]) -> Any:
        """Remove what a migration made here: its helper containers, then its volumes."""
        filters = f'{{"label": ["{MIGRATION_LABEL}={_migration(params)}"]}}'
        removed: list[str] = []
        with docker_errors():
            for c in await self._docker._query_json(
                "containers/json", params={"all": "1", "filters": filters}
            ):
                await delete(self._docker, f"containers/{object_ref(str(c['Id']))}", {"force": "1"})
            found = await self._docker._query_json("volumes", params={"filters": filters})
            for vol in (found or {}).get("Volumes") or []:
                await delete(self._docker, f"volumes/{object_ref(str(vol['Name']), 'volume')}")
                removed.append(str(vol["Name"]))
        return {"removed": removed}

    async def _export(self, stream: Stream) -> None:
        """DATA packets of tar, then `{"type":"end","bytes","sha256"}`."""
        name = _name(stream.params)
        image = stream.params.get("image")
        if not isinstance(image, str):
            raise RemoteError("bad_request", "'image' must be an image reference")
        out = PacketStream(stream)
        digest, count = hashlib.sha256(), 0
        try:
            async with archive.helper(self._docker, name, image, read_only=True) as cid:
                async for chunk in archive.export_volume(self._docker, cid):
                    digest.update(chunk)
                    count += len(chunk)
                    await out.send(Kind.DATA, chunk)
        except DockerFailure as exc:
            raise _failure(exc) from None
        await out.send_json({"type": "end", "bytes": count, "sha256": digest.hexdigest()})

    async def _import(self, stream: Stream) -> None:
        """Creates volume `name` (it must not exist), extracts the DATA packets into it and answers
        `{"type":"result","bytes","sha256"}` once the sender's `end` packet agrees with what arrived."""
        name = _name(stream.params)
        migration = _migration(stream.params)
        image = stream.params.get("image")
        if not isinstance(image, str):
            raise RemoteError("bad_request", "'image' must be an image reference")
        labels = {**_labels(stream.params.get("labels")), MIGRATION_LABEL: migration}
        auth = _auth(stream.params.get("auth"))
        try:
            with docker_errors():
                await self._docker._query_json(f"volumes/{name}")
            raise RemoteError("volume_exists", f"volume {name!r} already exists on this host")
        except DockerFailure as exc:
            if exc.code != "not_found":
                raise _failure(exc) from None
        await self._ensure_image(image, auth)
        del auth  # used for that pull only
        try:
            with docker_errors():
                await self._docker._query_json(
                    "volumes/create", method="POST", data={"Name": name, "Driver": "local", "Labels": labels}
                )
            result = await self._receive(stream, name, image, migration)
        except BaseException:
            await self._remove_quietly(name)
            raise
        await PacketStream(stream).send_json(result)

    async def _receive(self, stream: Stream, name: str, image: str, migration: str) -> dict[str, Any]:
        packets = PacketStream(stream)
        digest, count = hashlib.sha256(), 0
        trailer: dict[str, Any] = {}

        async def body() -> AsyncIterator[bytes]:
            nonlocal count
            while True:
                packet = await packets.recv()
                if packet is None:
                    raise RemoteError("incomplete", "the stream ended before the sender's end packet")
                kind, payload = packet
                if kind is Kind.JSON:
                    trailer.update(decode_json(payload))
                    return
                digest.update(payload)
                count += len(payload)
                yield payload

        try:
            labels = {MIGRATION_LABEL: migration}
            async with archive.helper(self._docker, name, image, read_only=False, labels=labels) as cid:
                await archive.import_volume(self._docker, cid, body())
        except DockerFailure as exc:
            if not trailer:  # the engine saw the body end early: say why, not how the engine put it
                raise RemoteError("incomplete", "the stream ended before the sender's end packet") from None
            raise _failure(exc) from None
        sent = trailer.get("sha256")
        if trailer.get("type") != "end" or not isinstance(sent, str) or not _SHA.fullmatch(sent):
            raise RemoteError("incomplete", "the sender's end packet is missing or malformed")
        if sent != digest.hexdigest() or trailer.get("bytes") != count:
            raise RemoteError(
                "checksum_mismatch",
                f"volume {name!r}: received {count} bytes with SHA-256 {digest.hexdigest()}, "
                f"the sender sent {trailer.get('bytes')!r} with {sent}",
            )
        return {"type": "result", "bytes": count, "sha256": sent}

    async def _ensure_image(self, image: str, auth: dict[str, dict[str, str]] | None) -> None:
        """The helper's image (the stack's own) is pulled first on a host that has never run the stack."""
        try:
            with docker_errors():
                await self._docker._query_json(f"images/{image_ref(image)}/json")
            return
        except DockerFailure as exc:
            if exc.code != "not_found":
                raise _failure(exc) from None
        creds = (auth or {}).get(registry_host(image))
        try:
            async for _row in pull_image(self._docker, image, creds):
                pass
        except DockerFailure as exc:
            raise _failure(exc) from None

    async def _remove_quietly(self, name: str) -> None:
        try:
            with docker_errors():
                await delete(self._docker, f"volumes/{name}", {"force": "1"})
        except DockerFailure as exc:
            log.warning("could not remove the partial copy %r: %s", name, exc)
