"""bench.stacks at one round, so it cannot rot: both paths deploy the stack and every figure is produced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


@pytest.mark.timeout(600)
def test_bench_stacks_smoke(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.stacks", "--rounds", "1", "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(raw.read_text())
    for label in ("healthcheck", "plain"):
        figures = results[label]
        assert len(figures["direct_s"]) == len(figures["linked_s"]) == 1
        assert figures["direct_median_s"] > 0
        assert figures["linked_median_s"] > 0
    assert "| healthcheck |" in proc.stdout
