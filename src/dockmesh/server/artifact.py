"""The agent artifact (a self-contained pex per architecture) that the installer downloads from us."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import dockmesh
from dockmesh import __version__
from dockmesh.host.facts import normalize_arch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    arch: str
    path: Path
    sha256: str
    size: int


def artifact_name(arch: str, version: str = __version__) -> str:
    return f"dockmesh-agent-{version}-{arch}.pex"


def source_tree() -> Path | None:
    """The project checkout this server runs from, if it is one (an editable install)."""
    root = Path(dockmesh.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_command(source: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pex",
        str(source),
        "-c",
        "dockmesh-agent",
        "-o",
        str(out),
        "--venv",
        "--python-shebang",
        "/usr/bin/env python3",
    ]


class Artifacts:
    """Finds, hashes (once) and, when missing for this machine's arch, builds agent artifacts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, Artifact] = {}
        self.build_error: str | None = None
        self._build: asyncio.Task[None] | None = None

    @property
    def building(self) -> bool:
        return self._build is not None and not self._build.done()

    def get(self, arch: str) -> Artifact | None:
        arch = normalize_arch(arch)
        path = self.directory / artifact_name(arch)
        if not path.is_file():
            return None
        cached = self._cache.get(arch)
        stat = path.stat()
        if cached and cached.size == stat.st_size:
            return cached
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        artifact = Artifact(arch, path, digest.hexdigest(), stat.st_size)
        self._cache[arch] = artifact
        return artifact

    def start_build_if_missing(self) -> None:
        arch = normalize_arch(platform.machine())
        if self.get(arch) is not None or self.building:
            return
        source = source_tree()
        if source is None:
            self.build_error = (
                f"no agent artifact for {arch} in {self.directory}; build one with "
                "`dockmesh build-agent --out DIR` and set DOCKMESH_ARTIFACT_DIR"
            )
            return
        self._build = asyncio.create_task(self._run_build(source, arch))

    async def _run_build(self, source: Path, arch: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / artifact_name(arch)
        tmp = final.with_suffix(".building")
        log_path = self.directory / "build.log"
        log.info("building the agent artifact for %s (log: %s)", arch, log_path)
        with log_path.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *build_command(source, tmp), stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL
            )
            code = await proc.wait()
        if code != 0:
            self.build_error = f"building the agent artifact failed (exit {code}); see {log_path}"
            log.error("%s", self.build_error)
            return
        tmp.replace(final)
        self.build_error = None
        log.info("agent artifact ready: %s", final)
