"""Apply an upgrade offer: check the signed manifest, fetch the artifact over the link, stage the trial.

Nothing here touches the running build: the new one is written beside it under builds/, and the
supervisor (agent/supervisor.py) starts it on trial after this process exits with RESTART.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from dockmesh import __version__
from dockmesh.agent.state import StateDir
from dockmesh.agent.trial import TrialFiles
from dockmesh.host.facts import normalize_arch
from dockmesh.link import Link, RemoteError
from dockmesh.proto.manifest import MAX_BYTES, Manifest, ManifestError
from dockmesh.proto.methods import Upgrade

__all__ = ["Upgrader"]


class Upgrader:
    def __init__(
        self,
        state: StateDir,
        trials: TrialFiles,
        *,
        clock: Callable[[], float] = time.time,
        version: str = __version__,
        arch: str | None = None,
    ) -> None:
        self._state = state
        self._trials = trials
        self._clock = clock
        self.version = version
        self.arch = arch or normalize_arch(platform.machine())
        self.staged: str | None = None

    async def apply(self, link: Link, params: dict[str, Any]) -> dict[str, Any]:
        """Stage the offered build, or raise RemoteError('upgrade_refused') saying why (also recorded)."""
        offered = "?"
        try:
            manifest = self._checked(params)
            offered = manifest.version
            artifact = manifest.check(self._clock(), self.version, self.arch)
            name = f"dockmesh-agent-{manifest.version}-{self.arch}.pex"
            await self._download(link, manifest.version, name, artifact.sha256, artifact.size)
            self._trials.stage(f"builds/{name}", manifest.version)
        except ManifestError as exc:
            self._trials.refused(offered, str(exc))
            raise RemoteError("upgrade_refused", str(exc)) from None
        self.staged = manifest.version
        return {"staged": manifest.version}

    def _checked(self, params: dict[str, Any]) -> Manifest:
        key = self._state.upgrade_public_key()
        if key is None:
            raise ManifestError("this agent has no upgrade key to check the manifest with")
        manifest_b64, signature_b64 = params.get("manifest"), params.get("signature")
        if not isinstance(manifest_b64, str) or not isinstance(signature_b64, str):
            raise ManifestError("the offer needs base64 'manifest' and 'signature'")
        if len(manifest_b64) > MAX_BYTES * 2 or len(signature_b64) > 200:
            raise ManifestError("the offer is larger than any we sign")
        try:
            data = base64.b64decode(manifest_b64, validate=True)
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError("the offer is not base64") from None
        # Signature before parsing: nothing an unsigned document says is looked at.
        # Loaded here, not at import: cryptography is megabytes an idle agent does not need.
        from dockmesh.pki.signing import verify

        if not verify(key, data, signature):
            raise ManifestError("the manifest's signature does not verify with this agent's upgrade key")
        return Manifest.decode(data)

    async def _download(self, link: Link, version: str, name: str, sha256: str, size: int) -> None:
        self._trials.builds.mkdir(mode=0o700, exist_ok=True)
        final = self._trials.builds / name
        part = final.with_name(name + ".part")
        digest = hashlib.sha256()
        received = 0
        stream = link.open_stream(Upgrade.ARTIFACT, {"arch": self.arch, "version": version})
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = await stream.read()
                    except RemoteError as exc:
                        raise ManifestError(
                            f"the server could not send the artifact: {exc.message}"
                        ) from None
                    if chunk is None:
                        break
                    received += len(chunk)
                    if received > size:  # bounded by the signed size: a peer cannot fill the disk
                        raise ManifestError(f"the artifact is larger than the manifest's {size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if received != size:
                raise ManifestError(f"the artifact is {received} bytes, the manifest says {size}")
            if digest.hexdigest() != sha256:
                raise ManifestError("the artifact's SHA-256 does not match the manifest; nothing installed")
            os.chmod(part, 0o700)  # executable by the agent's own user only
            os.replace(part, final)
        finally:
            stream.cancel()
            part.unlink(missing_ok=True)
