"""The signed upgrade manifest: canonical bytes, parsing with bounds, and the agent's acceptance rules.

Pure (no crypto, no clock, no files): the signature is checked by the caller over the exact bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["FORMAT", "MAX_BYTES", "Artifact", "Manifest", "ManifestError", "parse_version"]

FORMAT = 1
MAX_BYTES = 16 * 1024  # a manifest names a handful of arches; anything bigger is not one of ours
MAX_ARTIFACT = 512 * 1024 * 1024
_VERSION = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ARCH = re.compile(r"^[a-z0-9_]{1,16}$")


class ManifestError(ValueError):
    """The manifest is malformed or must not be applied; the message says which rule."""


def parse_version(text: object) -> tuple[int, ...]:
    if not isinstance(text, str) or not _VERSION.match(text):
        raise ManifestError(f"not a version (dotted numbers): {str(text)[:40]!r}")
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class Artifact:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    protocol: int
    issued_at: int
    expires_at: int
    artifacts: dict[str, Artifact]

    def encode(self) -> bytes:
        """The canonical bytes that are signed: sorted keys, no spaces, UTF-8."""
        doc = {
            "format": FORMAT,
            "version": self.version,
            "protocol": self.protocol,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "artifacts": {a: {"sha256": x.sha256, "size": x.size} for a, x in self.artifacts.items()},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) > MAX_BYTES:
            raise ManifestError("the manifest is larger than any we sign")
        try:
            doc = json.loads(data)
        except ValueError:
            raise ManifestError("the manifest is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ManifestError(f"unknown manifest format (this agent reads format {FORMAT})")
        parse_version(doc.get("version"))
        for key in ("protocol", "issued_at", "expires_at"):
            if not isinstance(doc.get(key), int) or isinstance(doc.get(key), bool):
                raise ManifestError(f"manifest field {key!r} must be an integer")
        arts = doc.get("artifacts")
        if not isinstance(arts, dict) or not arts:
            raise ManifestError("the manifest lists no artifacts")
        artifacts = {}
        for arch, entry in arts.items():
            artifacts[str(arch)] = _artifact(arch, entry)
        manifest = cls(doc["version"], doc["protocol"], doc["issued_at"], doc["expires_at"], artifacts)
        if manifest.encode() != data:
            # Signed bytes are canonical: anything else (extra keys, other spacing) was not made by us.
            raise ManifestError("the manifest is not in canonical form")
        return manifest

    def check(self, now: float, running: str, arch: str) -> Artifact:
        """The artifact this host should install, or ManifestError saying why not."""
        if now >= self.expires_at:
            raise ManifestError(f"the manifest for {self.version} expired")
        if parse_version(self.version) <= parse_version(running):
            raise ManifestError(
                f"the manifest offers {self.version}, not newer than the running {running} "
                "(a replayed or rollback manifest)"
            )
        found: Optional[Artifact] = self.artifacts.get(arch)
        if found is None:
            raise ManifestError(f"the manifest has no artifact for {arch}")
        return found


def _artifact(arch: Any, entry: Any) -> Artifact:
    if not isinstance(arch, str) or not _ARCH.match(arch) or not isinstance(entry, dict):
        raise ManifestError("bad artifact entry in the manifest")
    sha, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ManifestError(f"bad sha256 for {arch}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_ARTIFACT:
        raise ManifestError(f"bad size for {arch}")
    return Artifact(sha, size)
