"""Images: list, remove, pull (with per-request registry credentials)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiodocker

from dockmesh.docker._api import image_ref, iter_json_lines, open_stream, short_id
from dockmesh.docker.errors import bad_request, docker_errors, from_engine

__all__ = [
    "PullTally",
    "image_id",
    "list_images",
    "pull_image",
    "registry_auth_header",
    "registry_host",
    "remove_image",
]

_AUTH_KEYS = frozenset({"username", "password", "email", "serveraddress", "identitytoken", "registrytoken"})
_PROGRESS_KEYS = ("status", "id", "progress")
_MAX_LAYERS = 1024  # a manifest has tens of layers; a hostile registry must not grow the tally for ever
_DOCKER_HUB = "docker.io"


async def list_images(docker: aiodocker.Docker) -> list[dict[str, Any]]:
    """Images as rows ``id`` (12 hex), ``tags``, ``size`` (bytes), ``created`` (epoch)."""
    with docker_errors():
        raw = await docker.images.list()
    return [
        {
            "id": short_id(str(img.get("Id", ""))),
            "tags": [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"],
            "size": int(img.get("Size") or 0),
            "created": int(img.get("Created") or 0),
        }
        for img in raw or []
    ]


async def remove_image(docker: aiodocker.Docker, ref: str, force: bool = False) -> list[dict[str, Any]]:
    """Remove (untag/delete) image ``ref``; returns the engine's Untagged/Deleted records.

    Without ``force`` an image used by a container is a 409 conflict.
    """
    image_ref(ref)
    with docker_errors():
        result = await docker.images.delete(ref, force=bool(force))
    return list(result or [])


def registry_host(ref: str) -> str:
    """The registry part of an image reference (``docker.io`` when it names none)."""
    first, sep, _rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return _DOCKER_HUB


def registry_auth_header(ref: str, auth: Mapping[str, str]) -> str:
    """The base64url ``X-Registry-Auth`` value for pulling ``ref`` with ``auth``."""
    if not isinstance(auth, Mapping) or not auth:
        raise bad_request("registry auth must be a non-empty mapping")
    unknown = sorted(k for k in auth if k not in _AUTH_KEYS)
    if unknown:
        raise bad_request(f"unknown registry auth fields: {', '.join(map(str, unknown))}")
    if not all(isinstance(v, str) for v in auth.values()):
        raise bad_request("registry auth values must be strings")
    config = dict(auth)
    config.setdefault("serveraddress", registry_host(ref))
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def _has_tag_or_digest(ref: str) -> bool:
    last = ref.rsplit("/", 1)[-1]
    return ":" in last or "@" in last


async def pull_image(
    docker: aiodocker.Docker, ref: str, auth: dict[str, str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Pull ``ref``, yielding progress rows (``status`` and, when given, ``id``/``progress``, and
    ``current``/``total`` bytes of that layer).

    ``auth`` (``username``/``password`` or ``identitytoken``) travels only in this
    request's ``X-Registry-Auth`` header.  A registry refusal raises DockerFailure
    ``unauthorized`` (401/403); any other in-stream error raises too.
    """
    image_ref(ref)
    headers = {"X-Registry-Auth": registry_auth_header(ref, auth)} if auth is not None else {}
    params = {"fromImage": ref}
    if not _has_tag_or_digest(ref):
        params["tag"] = "latest"  # like `docker pull`: never "all tags"
    with docker_errors():
        async with open_stream(
            docker, "images/create", method="POST", params=params, headers=headers
        ) as resp:
            async for msg in iter_json_lines(resp):
                if "error" in msg or "errorDetail" in msg:
                    detail = msg.get("errorDetail")
                    text = (detail.get("message") if isinstance(detail, dict) else None) or msg.get("error")
                    raise from_engine(0, str(text or "pull failed"))
                row = {k: msg[k] for k in _PROGRESS_KEYS if k in msg}
                detail = msg.get("progressDetail")
                if isinstance(detail, dict):
                    for key in ("current", "total"):
                        value = detail.get(key)
                        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                            row[key] = value
                yield row


async def image_id(docker: aiodocker.Docker, ref: str) -> str:
    """The full id (``sha256:…``) of local image ``ref``."""
    image_ref(ref)
    with docker_errors():
        info = await docker.images.inspect(ref)
    return str(info.get("Id", ""))


class PullTally:
    """Bytes of a pull summed over its layers: each layer's latest ``current`` of its ``total``.

    Download and extraction both report bytes per layer; the tally follows the download, and a layer
    that is complete (``Pull complete``, ``Already exists``) counts as fully there.
    """

    def __init__(self) -> None:
        self._layers: dict[str, tuple[int, int]] = {}

    def add(self, row: dict[str, Any]) -> None:
        layer = row.get("id")
        status = str(row.get("status") or "")
        if not isinstance(layer, str) or (layer not in self._layers and len(self._layers) >= _MAX_LAYERS):
            return
        current, total = self._layers.get(layer, (0, 0))
        if status == "Downloading" and "total" in row:
            current, total = int(row.get("current", 0)), int(row["total"])
        elif status in ("Download complete", "Pull complete", "Already exists", "Verifying Checksum"):
            current = total
        else:
            return
        self._layers[layer] = (min(current, total), total)

    @property
    def current(self) -> int:
        return sum(c for c, _t in self._layers.values())

    @property
    def total(self) -> int:
        return sum(t for _c, t in self._layers.values())
