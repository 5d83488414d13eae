"""The agent soak benchmark at a tiny duration, against the real artifact, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(900)
def test_bench_soak_smoke(agent_artifacts: Path, tmp_path: Path) -> None:
    pex = next(agent_artifacts.glob("dockmesh-agent-*.pex"))
    raw = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--artifact", str(pex), "--minutes", "0.3", "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(raw.read_text())["candidate"]
    assert result["rounds"] >= 1  # logs, stats and exec opened and closed through the real agent
    assert 5 < result["idle_rss_mib"] < result["peak_rss_mib"] + 1
    assert result["end_rss_mib"] > 0
    # The artifact runs the agent under its supervisor: both are measured, and the agent on its own too.
    assert result["processes"] == 2
    assert 0 < result["idle_agent_rss_mib"] < result["idle_rss_mib"]
    assert isinstance(result["growth_pct"], float)
