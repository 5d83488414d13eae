"""Event-loop lag: how late a 100 ms timer fires, kept for the last 20 seconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

INTERVAL = 0.1


class LoopLag:
    def __init__(self, window: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(INTERVAL)
            self._samples.append(max(0.0, loop.time() - before - INTERVAL))

    def quantile(self, q: float) -> float:
        if not self._samples:
            return 0.0
        ordered = sorted(self._samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
