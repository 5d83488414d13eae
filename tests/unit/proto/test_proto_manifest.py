"""The upgrade manifest: canonical bytes, bounded parsing, and the acceptance rules."""

from __future__ import annotations

import json

import pytest

from dockmesh.proto.manifest import Artifact, Manifest, ManifestError, parse_version

SHA = "ab" * 32
GOOD = Manifest("0.2.0", 1, 100, 200, {"x86_64": Artifact(SHA, 10)})


def test_round_trip_is_canonical() -> None:
    data = GOOD.encode()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert Manifest.decode(data) == GOOD


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: {**d, "format": 2}, "unknown manifest format"),
        (lambda d: {**d, "version": "1.x"}, "not a version"),
        (lambda d: {**d, "expires_at": "soon"}, "'expires_at' must be an integer"),
        (lambda d: {**d, "artifacts": {}}, "no artifacts"),
        (lambda d: {**d, "artifacts": {"x86_64": {"sha256": "zz", "size": 10}}}, "bad sha256"),
        (lambda d: {**d, "artifacts": {"x86_64": {"sha256": SHA, "size": -1}}}, "bad size"),
        (lambda d: {**d, "extra": 1}, "canonical"),
    ],
)
def test_malformed_manifests_are_refused(mutate: object, message: str) -> None:
    doc = mutate(json.loads(GOOD.encode()))  # type: ignore[operator]
    with pytest.raises(ManifestError, match=message):
        Manifest.decode(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def test_not_json_and_oversize_are_refused() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.decode(b"{")
    with pytest.raises(ManifestError, match="larger"):
        Manifest.decode(b" " * 20000)


def test_check_rules() -> None:
    assert GOOD.check(150, "0.1.9", "x86_64") == Artifact(SHA, 10)
    with pytest.raises(ManifestError, match="expired"):
        GOOD.check(200, "0.1.0", "x86_64")
    with pytest.raises(ManifestError, match="not newer"):
        GOOD.check(150, "0.2.0", "x86_64")
    with pytest.raises(ManifestError, match="not newer"):
        GOOD.check(150, "0.10.0", "x86_64")  # numeric, not lexical, order
    with pytest.raises(ManifestError, match="no artifact for aarch64"):
        GOOD.check(150, "0.1.0", "aarch64")


def test_versions_compare_numerically() -> None:
    assert parse_version("0.10.0") > parse_version("0.9.9")
    with pytest.raises(ManifestError):
        parse_version("1.0.0-rc1")
