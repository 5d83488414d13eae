"""The agent artifact (one pex per architecture) that the installer downloads from us.

One artifact runs on the host's own CPython 3.9-3.13 on glibc >= 2.17: pex resolves the agent's
dependencies for each of those interpreters on that architecture (server/targets.py), and boots through
`/bin/sh` (`--sh-boot`), which picks whichever python3.x the host has. Only what the agent imports goes in:
the package's base dependencies and our code without the server's packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import dockmesh
from dockmesh import __version__
from dockmesh.host.facts import normalize_arch
from dockmesh.server.targets import ARCHES, complete_platforms

log = logging.getLogger(__name__)

# Server-only packages: the agent never imports them (tests/unit/cli/test_cli_agent_imports.py), so the
# artifact leaves them out, and with them the web assets.
SERVER_ONLY = ("server", "store")
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}([.+-]?[A-Za-z0-9]+)*")


class BuildError(Exception):
    """The artifact could not be built; the message says why and where the log is."""


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


def build_command(source: Path, out: Path, arch: str) -> list[str]:
    command = [sys.executable, "-m", "pex", str(source), "-c", "dockmesh-agent", "-o", str(out)]
    # pip 2020 resolver: pex's vendored pip (20.3, legacy resolver) walks every release of every dependency.
    command += ["--venv", "--sh-boot", "--no-emit-warnings", "--pip-version", "26.2.1"]
    # The supervisor (`run`) starts the agent (`child`) from a pex too: that pex must see the PEX_PYTHON and
    # PEX_ROOT the installer set, which pex strips from its entry point's environment by default.
    command += ["--no-strip-pex-env"]
    for platform in complete_platforms(arch):
        command += ["--complete-platform", platform]
    return command


def stage_source(source: Path, into: Path, version: str) -> Path:
    """A copy of the project without the server's packages, stamped with `version`.

    Building from a copy also keeps setuptools' build/ and egg-info out of the checkout.
    """
    if not _VERSION.fullmatch(version):
        raise BuildError(f"bad version {version!r}: use a PEP 440 version such as 1.2.3")
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "pyproject.toml", into / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *SERVER_ONLY)
    package = into / "src" / "dockmesh"
    shutil.copytree(source / "src" / "dockmesh", package, ignore=ignore)
    pyproject = into / "pyproject.toml"
    text, count = re.subn(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text())
    init = package / "__init__.py"
    init_text, init_count = re.subn(
        r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"', init.read_text()
    )
    if count != 1 or init_count != 1:
        raise BuildError("cannot stamp the version: pyproject.toml or dockmesh/__init__.py changed shape")
    pyproject.write_text(text)
    init.write_text(init_text)
    return into


def build(out_dir: Path, arch: str, version: str | None = None, source: Path | None = None) -> Path:
    """Build the artifact for `arch` into `out_dir` (atomically) and return its path.

    `version` stamps another version into the artifact (tests that upgrade from one build to another);
    by default it is this server's. Needs pex (the `server` extra) and a reachable package index.
    From a running event loop, await `build_async` instead.
    """
    return asyncio.run(build_async(out_dir, arch, version, source))


async def build_async(
    out_dir: Path, arch: str, version: str | None = None, source: Path | None = None
) -> Path:
    """`build`, as a coroutine: cancelling it stops the build (the server's shutdown does not wait)."""
    arch = normalize_arch(arch)
    if arch not in ARCHES:
        raise BuildError(f"no agent build for {arch!r} (known: {', '.join(ARCHES)})")
    version = version or __version__
    source = source or source_tree()
    if source is None:
        raise BuildError("building the agent needs a dockmesh source checkout (pip install -e .)")
    out_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once per build, before minutes of pex)
    final = out_dir / artifact_name(arch, version)
    log_path = out_dir / f"build-{arch}.log"
    tmp = out_dir / f".{final.name}.building"
    try:
        with tempfile.TemporaryDirectory(prefix="dockmesh-agent-build-") as work, log_path.open("wb") as out:
            staged = stage_source(source, Path(work) / "src", version)
            # Our own wheel first, once: handed the source tree, pex builds it again for each of the five
            # targets, each in a fresh isolated build environment (minutes on a small machine).
            wheels = Path(work) / "wheels"
            pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--no-cache-dir"]
            code = await _call([*pip_wheel, "-w", str(wheels), str(staged)], out)
            if code == 0:
                code = await _call(build_command(next(wheels.glob("dockmesh-*.whl")), tmp, arch), out)
        if code != 0:
            raise BuildError(f"building the agent artifact for {arch} failed (exit {code}); see {log_path}")
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


async def _call(argv: list[str], out: IO[bytes]) -> int:
    """Run a build step; if cancelled, kill it with everything it started (pex runs pip processes)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return await proc.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise


class Artifacts:
    """Finds, hashes (once) and, when missing, builds agent artifacts."""

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
        missing = [arch for arch in ARCHES if self.get(arch) is None]
        if not missing or self.building:
            return
        if source_tree() is None:
            self.build_error = (
                f"no agent artifact for {', '.join(missing)} in {self.directory}; build them with "
                "`dockmesh build-agent --out DIR` and set DOCKMESH_ARTIFACT_DIR"
            )
            return
        self._build = asyncio.create_task(self._run_build(missing))

    async def _run_build(self, arches: list[str]) -> None:
        errors = []
        for arch in arches:
            log.info("building the agent artifact for %s (log: %s/build-%s.log)", arch, self.directory, arch)
            try:
                final = await build_async(self.directory, arch)
            except BuildError as exc:
                errors.append(str(exc))
                log.error("%s", exc)
                continue
            log.info("agent artifact ready: %s", final)
        self.build_error = "; ".join(errors) or None
