"""Link handlers for volumes, networks and images: params checked here, at the boundary, then docker/.

Every field comes from the peer: names follow Docker's own rule, sizes are bounded, booleans must be
booleans (a string "false" is truthy and would, say, force a removal).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiodocker

from dockmesh.docker import images, networks, prune, volumes
from dockmesh.docker._api import image_ref, short_id
from dockmesh.docker.errors import DockerFailure
from dockmesh.link import RemoteError, Stream
from dockmesh.link.packets import PacketStream
from dockmesh.proto.methods import Objects

Request = Callable[[dict[str, Any]], Awaitable[Any]]

# Docker's rule for volume, network and container names (daemon/names: RestrictedNameChars).
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
MAX_NAME = 255
DRIVER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")
MAX_IMAGE_REF = 512
MAX_LABELS = 64
MAX_LABEL_KEY = 256
MAX_LABEL_VALUE = 4096
MAX_AUTH_VALUE = 8192


def name(params: dict[str, Any], key: str = "name", kind: str = "volume") -> str:
    value = params.get(key)
    if not isinstance(value, str) or len(value) > MAX_NAME or not NAME_RE.fullmatch(value):
        raise RemoteError(
            "bad_request",
            f"'{key}' must be a {kind} name of 2 to {MAX_NAME} characters: letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)",
        )
    return value


def flag(params: dict[str, Any], key: str, default: bool = False) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise RemoteError("bad_request", f"'{key}' must be true or false")
    return value


def driver(params: dict[str, Any], default: str) -> str:
    value = params.get("driver")
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not DRIVER_RE.fullmatch(value):
        raise RemoteError("bad_request", "'driver' must be a driver name such as 'local' or 'bridge'")
    return value


def labels(params: dict[str, Any]) -> dict[str, str]:
    value = params.get("labels")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_LABELS:
        raise RemoteError("bad_request", f"'labels' must be an object of at most {MAX_LABELS} strings")
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > MAX_LABEL_KEY:
            raise RemoteError("bad_request", f"label names must be 1 to {MAX_LABEL_KEY} characters")
        if not isinstance(v, str) or len(v) > MAX_LABEL_VALUE:
            raise RemoteError("bad_request", f"label {k!r}: values are strings of at most {MAX_LABEL_VALUE}")
    return dict(value)


def image(params: dict[str, Any], key: str = "image") -> str:
    value = params.get(key)
    try:
        if not isinstance(value, str) or len(value) > MAX_IMAGE_REF:
            raise DockerFailure(400, "bad_request", "")
        return image_ref(value)
    except DockerFailure:
        raise RemoteError(
            "bad_request", f"'{key}' must be an image reference such as 'registry:5000/app:1' or an image id"
        ) from None


def auth(params: dict[str, Any]) -> dict[str, str] | None:
    value = params.get("auth")
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 8
        or not all(isinstance(v, str) and len(v) <= MAX_AUTH_VALUE for v in value.values())
    ):
        raise RemoteError("bad_request", "'auth' must be an object of registry credential strings")
    return {str(k): v for k, v in value.items()}


def prune_mode(params: dict[str, Any]) -> str:
    value = params.get("mode", "unused")
    if value not in prune.IMAGE_MODES:
        raise RemoteError("bad_request", f"'mode' must be one of {', '.join(prune.IMAGE_MODES)}")
    return str(value)


def _clear(exc: DockerFailure, what: str) -> RemoteError:
    """The engine's 409/404 on a removal, said so that the user knows what to do."""
    if exc.code == "conflict":
        return RemoteError("in_use", f"{what} is in use: {exc.message}")
    if exc.code == "not_found":
        return RemoteError("not_found", f"{what} does not exist")
    return RemoteError(exc.code, exc.message)


class ObjectHandlers:
    """The requests (`requests`) and the pull stream of this area."""

    def __init__(self, docker: aiodocker.Docker) -> None:
        self._docker = docker
        self.requests: dict[str, Request] = {
            Objects.VOLUMES_CREATE: self._volume_create,
            Objects.VOLUMES_REMOVE: self._volume_remove,
            Objects.VOLUMES_PRUNE: self._volumes_prune,
            Objects.NETWORKS_CREATE: self._network_create,
            Objects.NETWORKS_REMOVE: self._network_remove,
            Objects.IMAGES_REMOVE: self._image_remove,
            Objects.IMAGES_PRUNE: self._images_prune,
        }
        self.streams: dict[str, Callable[[Stream], Awaitable[None]]] = {Objects.IMAGES_PULL: self._pull}

    async def _volume_create(self, params: dict[str, Any]) -> Any:
        return await volumes.create_volume(
            self._docker, name(params), labels(params), driver=driver(params, "local")
        )

    async def _volume_remove(self, params: dict[str, Any]) -> Any:
        ref, force = name(params), flag(params, "force")
        try:
            await volumes.remove_volume(self._docker, ref, force=force)
        except DockerFailure as exc:
            raise _clear(exc, f"volume {ref!r}") from None
        return {"ok": True}

    async def _network_create(self, params: dict[str, Any]) -> Any:
        ref, kind = name(params, kind="network"), driver(params, "bridge")
        internal, extra = flag(params, "internal"), labels(params)
        try:
            full_id = await networks.create_network(
                self._docker, ref, driver=kind, internal=internal, labels=extra
            )
        except DockerFailure as exc:
            if exc.code == "conflict":
                raise RemoteError("conflict", f"a network named {ref!r} exists already") from None
            raise
        return {"id": short_id(full_id), "name": ref, "driver": kind, "internal": internal, "stack": None}

    async def _network_remove(self, params: dict[str, Any]) -> Any:
        ref = name(params, "id", kind="network")
        try:
            await networks.remove_network(self._docker, ref)
        except DockerFailure as exc:
            raise _clear(exc, f"network {ref!r}") from None
        return {"ok": True}

    async def _image_remove(self, params: dict[str, Any]) -> Any:
        ref, force = image(params, "id"), flag(params, "force")
        try:
            await images.remove_image(self._docker, ref, force=force)
        except DockerFailure as exc:
            raise _clear(exc, f"image {ref!r}") from None
        return {"ok": True}

    async def _images_prune(self, params: dict[str, Any]) -> Any:
        result = await prune.prune_images(
            self._docker, dry_run=flag(params, "dry_run"), mode=prune_mode(params)
        )
        return result.to_dict()

    async def _volumes_prune(self, params: dict[str, Any]) -> Any:
        return (await prune.prune_volumes(self._docker, dry_run=flag(params, "dry_run"))).to_dict()

    async def _pull(self, stream: Stream) -> None:
        ref, credentials = image(stream.params), auth(stream.params)
        packets = PacketStream(stream)
        tally = images.PullTally()
        async for row in images.pull_image(self._docker, ref, credentials):
            tally.add(row)
            await packets.send_json(
                {
                    "type": "progress",
                    "id": row.get("id"),
                    "status": row.get("status"),
                    "current": row.get("current"),
                    "total": row.get("total"),
                    "pulled": tally.current,
                    "size": tally.total,
                }
            )
        full_id = await images.image_id(self._docker, ref)
        await packets.send_json({"type": "result", "image": ref, "id": full_id})
