"""Agent artifacts of another version, for the upgrade tests (docs/upgrades.md)."""

from __future__ import annotations

import platform
from pathlib import Path

from dockmesh.host.facts import normalize_arch
from dockmesh.server.artifact import build


def build_versioned(out: Path, version: str) -> Path:
    """This checkout's agent artifact for this machine's arch, stamped as `version`, built into out/."""
    return build(out, normalize_arch(platform.machine()), version=version)
