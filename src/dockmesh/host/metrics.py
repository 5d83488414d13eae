"""Host metrics sampled with psutil; one sample costs about a millisecond."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil


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


def sample(disk_path: str | Path = "/", containers: tuple[int, int] = (0, 0)) -> HostMetrics:
    """CPU since the previous call (the first call primes the counter and reads 0)."""
    mem = psutil.virtual_memory()
    try:
        disk = psutil.disk_usage(str(disk_path))
        disk_used, disk_total = int(disk.used), int(disk.total)
    except OSError:
        disk_used = disk_total = 0
    return HostMetrics(
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        cpu_count=int(psutil.cpu_count() or 1),
        mem_used=int(mem.total - mem.available),
        mem_total=int(mem.total),
        disk_used=disk_used,
        disk_total=disk_total,
        containers_running=containers[0],
        containers_total=containers[1],
    )
