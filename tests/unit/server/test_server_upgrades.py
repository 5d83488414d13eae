"""Protocol negotiation (N and N-1), the hello's bounded upgrade report, and the signed manifest."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from dockmesh.pki.signing import SigningKey, verify
from dockmesh.proto import PROTOCOL_VERSION
from dockmesh.proto.manifest import Manifest
from dockmesh.server.artifact import Artifacts, artifact_name
from dockmesh.server.gateway import negotiate, upgrade_report
from dockmesh.server.manifests import LIFETIME, RESIGN_BEFORE, Manifests
from dockmesh.server.services.upgrades import older


def test_negotiation_accepts_ours_and_the_one_before() -> None:
    assert negotiate(PROTOCOL_VERSION) is None
    if PROTOCOL_VERSION > 1:
        assert negotiate(PROTOCOL_VERSION - 1) is None
    newer = negotiate(PROTOCOL_VERSION + 1)
    assert newer is not None
    assert "newer than this server's" in newer
    assert "upgrade the server" in newer
    for bad in (PROTOCOL_VERSION - 2, "1", None, True):
        reason = negotiate(bad)
        assert reason is not None
        assert "reinstall the agent" in reason


def test_upgrade_report_is_bounded_and_checked() -> None:
    assert upgrade_report(None) is None
    assert upgrade_report({"outcome": "exploded"}) is None
    report = upgrade_report({"to": "0.2.0", "outcome": "rolled_back", "error": "x" * 10_000, "junk": 1})
    assert report is not None
    assert set(report) == {"to", "outcome", "error"}
    assert len(report["error"]) == 300


def test_older() -> None:
    assert older("0.0.1", "0.1.0")
    assert not older("0.1.0", "0.1.0")
    assert not older("garbage", "0.1.0")


def test_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.key"
    first = SigningKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SigningKey.load_or_create(path).public_b64() == first.public_b64()
    assert len(base64.b64decode(first.public_b64())) == 32


def test_manifest_is_signed_for_the_served_artifacts_and_resigned_before_expiry(tmp_path: Path) -> None:
    now = [1_000_000.0]
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / artifact_name("x86_64", "0.5.0")).write_bytes(b"pex bytes")
    key = SigningKey.load_or_create(tmp_path / "k")
    manifests = Manifests(key, Artifacts(tmp_path / "art"), lambda: now[0], version="0.5.0")
    # Artifacts names files with the running version; point it at ours.
    manifests.artifacts.get = lambda arch: None  # type: ignore[method-assign]
    assert manifests.offer() is None
    manifests = Manifests(
        key, _Served(tmp_path / "art" / artifact_name("x86_64", "0.5.0")), lambda: now[0], "0.5.0"
    )
    params = manifests.offer()
    assert params is not None
    data, sig = base64.b64decode(params["manifest"]), base64.b64decode(params["signature"])
    assert verify(key.public_b64(), data, sig)
    manifest = Manifest.decode(data)
    assert manifest.version == "0.5.0"
    assert manifest.expires_at == now[0] + LIFETIME
    assert manifest.artifacts["x86_64"].size == len(b"pex bytes")
    now[0] += LIFETIME - RESIGN_BEFORE + 1
    renewed = manifests.current()
    assert renewed is not None
    assert renewed[0].expires_at == int(now[0] + LIFETIME)
    assert manifests.path_for("x86_64", "0.5.0") is not None
    assert manifests.path_for("x86_64", "0.4.0") is None  # only this server's version is served
    assert manifests.path_for("../x", "0.5.0") is None


class _Served(Artifacts):
    def __init__(self, path: Path) -> None:
        super().__init__(path.parent)
        self._path = path

    def get(self, arch: str):  # type: ignore[no-untyped-def]
        import hashlib

        from dockmesh.server.artifact import Artifact

        if arch != "x86_64":
            return None
        data = self._path.read_bytes()
        return Artifact(arch, self._path, hashlib.sha256(data).hexdigest(), len(data))
