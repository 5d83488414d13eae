"""tests/integration/builds.py: one build per test run, shared by the xdist workers (real processes, real
file locks; the build itself is a stand-in that records who ran it)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fleet import FleetError
from tests.integration.builds import configure_node, shared, unconfigure


def _worker(root: str, key: str) -> Any:
    return SimpleNamespace(workerinput={"dockmesh_builds": root, "workerid": key})


def _build_slowly(out: Path) -> None:
    # Each build leaves a mark beside its dir, so the test can count them.
    (out.parent / f"built-by-{os.getpid()}").touch()
    time.sleep(0.3)  # a build takes a while: the other workers arrive during it
    (out / "agent.pex").write_text("pex")


def _use(root: str, ready: Any, go: Any) -> None:
    ready.set()
    go.wait(10)
    with shared(_worker(root, "gw"), "x86_64", _build_slowly) as out:
        assert (out / "agent.pex").read_text() == "pex"


def test_workers_racing_for_a_build_make_it_once(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_use, args=(str(root), ready, go)) for ready in readies]
    for proc in procs:
        proc.start()
    for ready in readies:
        assert ready.wait(30)
    go.set()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    assert len(list(root.glob("built-by-*"))) == 1
    assert (root / "x86_64" / "agent.pex").exists()


def test_a_failed_build_fails_the_next_worker_without_building_again(tmp_path: Path) -> None:
    calls: list[Path] = []

    def broken(out: Path) -> None:
        calls.append(out)
        raise RuntimeError("pex exited 1; see build-aarch64.log")

    config = _worker(str(tmp_path), "gw0")
    with pytest.raises(RuntimeError), shared(config, "aarch64", broken):
        pass
    with pytest.raises(FleetError, match="failed on another worker: RuntimeError: pex exited 1"):
        with shared(_worker(str(tmp_path), "gw1"), "aarch64", broken):
            pass
    assert len(calls) == 1


def test_a_half_build_of_a_killed_worker_is_made_again(tmp_path: Path) -> None:
    (tmp_path / "x86_64").mkdir()
    (tmp_path / "x86_64" / ".agent.pex.building").write_text("half")  # no .done beside it
    with shared(_worker(str(tmp_path), "gw0"), "x86_64", _build_slowly) as out:
        assert sorted(p.name for p in out.iterdir()) == ["agent.pex"]


def test_without_xdist_the_session_owns_its_build(tmp_path: Path) -> None:
    with shared(SimpleNamespace(), "x86_64", lambda out: (out / "agent.pex").touch()) as out:
        assert (out / "agent.pex").exists()
    assert not out.exists()


def test_the_controller_hands_every_worker_one_dir_and_removes_it() -> None:
    config: Any = SimpleNamespace(stash=pytest.Stash())  # the controller's config: only its stash is used
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    configure_node(config, first)
    configure_node(config, second)
    path = Path(first["dockmesh_builds"])
    assert second == first
    assert (path / "owner").read_text() == str(os.getpid())  # the stale-run reaper's key
    unconfigure(config)
    assert not path.exists()
