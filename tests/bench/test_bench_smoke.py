"""The benchmarks at tiny sizes, so they cannot rot: every figure must be produced, and be sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(600)
def test_bench_smoke(tmp_path: Path) -> None:
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(raw.read_text())
    held = results["held"][0]
    assert held["online"] == held["agents"] == 20
    assert held["rss_per_agent_kib"] > 0
    assert results["held_stock"]["online"] == 20
    ops = results["ops"]
    assert ops["fanout"]["rows_all"] == 20 * 50
    assert ops["stalled"]["timeouts"] == 1
    assert ops["stalled"]["p50_ms"] >= ops["stalled"]["deadline_ms"]
    assert len(ops["restart_s"]) == 3
    pg = results["postgresql"]
    assert pg["held"]["online"] == pg["held"]["agents"] == 20
    assert len(pg["restart_s"]) == 3
    streams = results["streams"]
    assert streams["complete"] is True
    assert streams["linked_mb_s"] > 0
    assert streams["exec"]["linked_p50_ms"] > 0
    report = out.read_text()
    for heading in (
        "Agents held",
        "Fan-out",
        "Dashboard",
        "SIGKILL",
        "Streams",
        "Targets",
        "Database engines",
    ):
        assert heading in report
