"""The signed manifest of the agent artifacts this server serves (docs/upgrades.md); re-signed in time."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from dockmesh import __version__
from dockmesh.pki.signing import SigningKey
from dockmesh.proto import PROTOCOL_VERSION
from dockmesh.proto.manifest import Artifact, Manifest
from dockmesh.server.artifact import Artifacts, artifact_name

LIFETIME = 7 * 86400.0
RESIGN_BEFORE = 86400.0  # a manifest is replaced once less than a day of it is left
ARCHES = ("x86_64", "aarch64")

KEY_FILE = "upgrade.key"


class Manifests:
    def __init__(
        self, key: SigningKey, artifacts: Artifacts, clock: Callable[[], float], version: str = __version__
    ) -> None:
        self.key = key
        self.artifacts = artifacts
        self.version = version
        self._clock = clock
        self._signed: tuple[Manifest, bytes] | None = None

    @classmethod
    def open(cls, data_dir: Path, artifacts: Artifacts, clock: Callable[[], float]) -> Manifests:
        return cls(SigningKey.load_or_create(data_dir / KEY_FILE), artifacts, clock)

    def current(self) -> tuple[Manifest, bytes] | None:
        """(manifest, signature) for the artifacts on disk now, or None when there is none to offer."""
        found = {}
        for arch in ARCHES:
            art = self.artifacts.get(arch)
            if art is not None:
                found[arch] = Artifact(art.sha256, art.size)
        if not found:
            return None
        now = self._clock()
        signed = self._signed
        if signed is None or signed[0].artifacts != found or signed[0].expires_at - now < RESIGN_BEFORE:
            manifest = Manifest(self.version, PROTOCOL_VERSION, int(now), int(now + LIFETIME), found)
            signed = self._signed = (manifest, self.key.sign(manifest.encode()))
        return signed

    def offer(self) -> dict[str, str] | None:
        """The `agent.upgrade` params: both base64."""
        signed = self.current()
        if signed is None:
            return None
        return {
            "manifest": base64.b64encode(signed[0].encode()).decode(),
            "signature": base64.b64encode(signed[1]).decode(),
        }

    def path_for(self, arch: str, version: str) -> Path | None:
        """The artifact file a stream may send: only this server's version, only a known arch."""
        if version != self.version or arch not in ARCHES:
            return None
        art = self.artifacts.get(arch)
        return art.path if art is not None and art.path.name == artifact_name(arch, version) else None
