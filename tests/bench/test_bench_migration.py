"""bench.migration at one small round, so it cannot rot: both paths copy the volume, every figure is made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


@pytest.mark.timeout(600)
def test_bench_migration_smoke(tmp_path: Path) -> None:
    raw = tmp_path / "migration.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.migration", "--mb", "8", "--rounds", "1", "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(raw.read_text())
    assert len(results["direct_s"]) == len(results["dockmesh_s"]) == 1
    assert results["bytes_copied"] >= 8 << 20  # the whole volume went through the links (tar adds headers)
    assert results["direct_mb_s"] > 0
    assert results["dockmesh_mb_s"] > 0
    assert "| 8 MiB |" in proc.stdout
