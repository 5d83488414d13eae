"""Agent artifacts built once per test run, shared by the run's pytest-xdist workers.

A pex build takes minutes (docs/upgrades.md). Each xdist worker is its own pytest session, so a
session-scoped fixture alone would build every artifact once per worker that needs it. Instead the
controller names one directory for the whole run (handed to each worker in `workerinput`); the first
worker that needs an artifact builds it there under a file lock, and the others wait for that build and
reuse it. Without xdist the session builds into a directory of its own, as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from tests.fleet import FleetError, short_tmpdir

__all__ = ["configure_node", "shared", "unconfigure"]

_WORKERINPUT_KEY = "dockmesh_builds"
_RUN_DIR = pytest.StashKey[Path]()


def configure_node(config: pytest.Config, workerinput: dict[str, Any]) -> None:
    """Controller side: every worker (a restarted one too) gets the run's one build directory."""
    path = config.stash.get(_RUN_DIR, None)
    if path is None:
        path = short_tmpdir("b")
        # The stale-run reaper (tests/fleet.py) removes it if this controller dies without cleaning up.
        (path / "owner").write_text(str(os.getpid()))
        config.stash[_RUN_DIR] = path
    workerinput[_WORKERINPUT_KEY] = str(path)


def unconfigure(config: pytest.Config) -> None:
    """Controller side, after every worker has finished: the builds go."""
    path = config.stash.get(_RUN_DIR, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def shared(config: pytest.Config, key: str, build: Callable[[Path], object]) -> Iterator[Path]:
    """A directory holding what `build(directory)` made, built once per test run for each `key`."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    root = workerinput.get(_WORKERINPUT_KEY) if workerinput else None
    if root is None:  # one process: this session owns the build
        out = short_tmpdir(f"art-{key}")
        try:
            build(out)
            yield out
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return
    out = Path(root) / key
    done, failed = out.with_name(f"{key}.done"), out.with_name(f"{key}.failed")
    # No timeout on the lock: the holder is building, and pytest-timeout bounds the waiting test.
    with FileLock(out.with_name(f"{key}.lock")):
        if failed.exists():
            # Building again would fail the same way after the same minutes.
            raise FleetError(f"building {key} failed on another worker: {failed.read_text()}")
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # the half build of a worker that was killed
            out.mkdir()
            try:
                build(out)
            except Exception as e:
                failed.write_text(f"{type(e).__name__}: {e}")
                raise
            done.touch()
    yield out
