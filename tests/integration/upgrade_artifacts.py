"""Agent artifacts of another version, for the upgrade tests (docs/upgrades.md).

`build_versioned` is the one-function version override; the artifact branch replaces it with
`server/artifact.build(out_dir, arch, version=…)`.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

from dockmesh.host.facts import normalize_arch
from dockmesh.server.artifact import artifact_name, build_command, source_tree


def build_versioned(out: Path, version: str) -> Path:
    """Build this checkout's agent pex as `version` (a copy with the version rewritten) into out/."""
    source = source_tree()
    assert source is not None, "the upgrade tests build from a source checkout"
    work = out / f"src-{version}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        if (source / name).exists():
            shutil.copy2(source / name, work / name)
    pyproject = work / "pyproject.toml"
    pyproject.write_text(
        re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text(), count=1)
    )
    init = work / "src" / "dockmesh" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    target = out / artifact_name(normalize_arch(platform.machine()), version)
    with (out / f"build-{version}.log").open("wb") as log:
        code = subprocess.call(build_command(work, target), stdout=log, stderr=subprocess.STDOUT, timeout=900)
    assert code == 0, (out / f"build-{version}.log").read_text(errors="replace")[-3000:]
    shutil.rmtree(work, ignore_errors=True)
    return target
