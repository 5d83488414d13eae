"""Host metrics from a /proc tree: CPU between samples, memory from MemAvailable, disk from statvfs."""

from __future__ import annotations

import os
from pathlib import Path

from dockmesh.host.metrics import Sampler, disk, memory


def _proc(root: Path, user: int, idle: int, iowait: int = 0) -> Path:
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    (root / "meminfo").write_text(
        "MemTotal:       2048 kB\nMemFree:         512 kB\nMemAvailable:   1024 kB\n"
    )
    return root


def test_cpu_percent_is_busy_time_over_time_between_samples(tmp_path: Path) -> None:
    proc = _proc(tmp_path / "proc", user=100, idle=100)
    sampler = Sampler(proc)
    _proc(proc, user=130, idle=160, iowait=10)  # +30 busy, +60 idle, +10 iowait (not busy)
    assert sampler.cpu_percent() == 30.0
    assert sampler.cpu_percent() == 0.0  # no time passed: not a division by zero


def test_memory_used_is_total_minus_available(tmp_path: Path) -> None:
    proc = _proc(tmp_path / "proc", 1, 1)
    assert memory(proc) == ((2048 - 1024) * 1024, 2048 * 1024)
    (proc / "meminfo").write_text("MemTotal: 2048 kB\nMemFree: 256 kB\n")  # kernels before 3.14
    assert memory(proc) == ((2048 - 256) * 1024, 2048 * 1024)


def test_missing_proc_reads_zero_instead_of_failing(tmp_path: Path) -> None:
    sampler = Sampler(tmp_path / "nothing")
    metrics = sampler.sample(tmp_path / "nothing")
    assert (metrics.cpu_percent, metrics.mem_total, metrics.disk_total) == (0.0, 0, 0)


def test_disk_matches_statvfs(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    used, total = disk(tmp_path)
    assert total == st.f_blocks * st.f_frsize
    assert 0 < used <= total


def test_a_real_sample_is_plausible() -> None:
    metrics = Sampler().sample("/", (2, 5))
    assert 0 < metrics.mem_used < metrics.mem_total
    assert metrics.cpu_count == os.cpu_count()
    assert (metrics.containers_running, metrics.containers_total) == (2, 5)
