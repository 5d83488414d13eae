"""Percentiles and timing helpers for the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def sample(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"
