"""Host metrics read from /proc and statvfs: a sample is three small reads, no library.

The agent runs on Linux only; reading /proc ourselves (as psutil does) saved its native wheel per
platform and 0.85 MiB of the idle agent's memory (measured, docs/artifact.md "Footprint").
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class HostMetrics:
    cpu_percent: float
    cpu_count: int
    mem_used: int
    mem_total: int
    disk_used: int
    disk_total: int
    containers_running: int = 0
    containers_total: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_times(proc: Path = PROC) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; idle and iowait are not busy (as in psutil, top)."""
    try:
        with (proc / "stat").open() as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user.
    total = sum(fields[:8])
    idle = sum(fields[3:5])
    return total - idle, total


def memory(proc: Path = PROC) -> tuple[int, int]:
    """(used, total) bytes, used = total - MemAvailable (what the kernel could give without swapping)."""
    values: dict[str, int] = {}
    try:
        with (proc / "meminfo").open() as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in ("MemTotal", "MemAvailable", "MemFree"):
                    values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0))  # MemAvailable: Linux 3.14+
    return max(0, total - available), total


def disk(path: str | Path) -> tuple[int, int]:
    """(used, total) bytes of the filesystem holding `path`, as df shows them."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0, 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize


class Sampler:
    """CPU % between consecutive samples (the first one primes the counters and reads 0)."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self._last = cpu_times(proc)

    def cpu_percent(self) -> float:
        busy, total = cpu_times(self.proc)
        last_busy, last_total = self._last
        self._last = busy, total
        if total <= last_total:
            return 0.0
        return round(100.0 * max(0, busy - last_busy) / (total - last_total), 1)

    def sample(self, disk_path: str | Path = "/", containers: tuple[int, int] = (0, 0)) -> HostMetrics:
        mem_used, mem_total = memory(self.proc)
        disk_used, disk_total = disk(disk_path)
        return HostMetrics(
            cpu_percent=self.cpu_percent(),
            cpu_count=os.cpu_count() or 1,
            mem_used=mem_used,
            mem_total=mem_total,
            disk_used=disk_used,
            disk_total=disk_total,
            containers_running=containers[0],
            containers_total=containers[1],
        )


_default = Sampler()


def sample(disk_path: str | Path = "/", containers: tuple[int, int] = (0, 0)) -> HostMetrics:
    """CPU since the previous call (the first call primes the counter and reads 0)."""
    return _default.sample(disk_path, containers)
