"""The README's two commands on a stock Debian: the system's own Python first on the PATH.

Debian marks its Python "externally managed" (PEP 668), so `pip install` into it is refused; the
scripts must make and use their own virtual environment. Both run from a copy of this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import free_port, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
STOCK_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
# The copied checkout (with its venv) is made once per module: its tests run on one xdist worker.
pytestmark = pytest.mark.xdist_group("scripts")
SKIP_IN_COPY = {".git", ".venv", "data", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def stock_env(**extra: str) -> dict[str, str]:
    env = {"PATH": STOCK_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not Path("/usr/bin/python3").exists():
        pytest.fail("these tests need the distribution's /usr/bin/python3 (Debian: apt-get install python3)")
    copy = tmp_path_factory.mktemp("stock") / "dockmesh"
    shutil.copytree(ROOT, copy, ignore=lambda _d, names: [n for n in names if n in SKIP_IN_COPY])
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def test_the_system_python_refuses_pip_installs() -> None:
    """The premise: without a venv, installing fails here just as on a stock Debian."""
    marker = list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))
    assert marker, "this machine's system Python is not externally managed; the tests below prove less"


def test_serve_runs_with_the_system_python_first(checkout: Path, tmp_path: Path) -> None:
    port = free_port()
    env = stock_env(
        DOCKMESH_DATA_DIR=str(tmp_path / "data"),
        DOCKMESH_ADMIN_PASSWORD="stock-debian-password",
        DOCKMESH_ARTIFACT_DIR=str(tmp_path / "artifacts"),  # an operator-supplied dir: no build
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
    )
    log = tmp_path / "serve.log"
    argv = ["./scripts/serve", "--http", f"127.0.0.1:{port}", "--agent-listen", f"127.0.0.1:{free_port()}"]
    proc = spawn(argv, env=env, log_path=log, cwd=checkout)
    try:

        def healthy() -> bool:
            assert proc.alive, log.read_text(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(healthy, 600, interval=0.5, message=lambda: log.read_text(errors="replace")[-3000:])
    finally:
        proc.stop()
    venv_python = checkout / ".venv" / "bin" / "python"
    assert venv_python.exists()
    base = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True
    ).stdout.strip()
    assert base == "/usr"  # made from the distribution's Python, not this machine's own


def test_test_command_runs_with_the_system_python_first(checkout: Path) -> None:
    result = subprocess.run(
        ["./scripts/test", "-q", "-p", "no:cacheprovider", "tests/unit/proto"],
        cwd=checkout,
        env=stock_env(CI="true"),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert " passed" in output
    assert "externally-managed-environment" not in output
